#!/usr/bin/env python3
"""TLS scanners against a real ``tlsecho serve``: the policy gate.

- sslyze (PyPI): Mozilla "intermediate" compliance of the default profile and
  "modern" compliance of ``--tls-profile modern``;
- testssl.sh (Debian): no finding of severity MEDIUM or above for the default
  configuration, ignoring the ids that only reflect a private test CA, and
  printing (not failing on) the notices testssl makes about its own OpenSSL.

Run by ``make scan`` (which installs both tools). Offline: loopback only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TLSECHO = [str(ROOT / ".venv" / "bin" / "tlsecho")]
SSLYZE = str(ROOT / ".venv-scan" / "bin" / "sslyze")
BAD_SEVERITIES = {"MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL"}
# Findings about a private test CA, not about the server (TLS-NOTES.md).
IGNORED_IDS = {
    "cert_revocation",
    "cert_expirationStatus",
    "cert_notAfter",
    "cert_ocspURL",
    "cert_crlDistributionPoints",
}
# Notices about the scanner's own environment, not about the server: testssl
# emits these through its fileout_insert_warning() before it scans, as WARN.
# Matched by id only, never by wording (it differs between testssl versions).
SCANNER_NOTICES = {
    # Debian's OpenSSL 3 has no ENGINE/GOST support; testssl says so on every
    # scan (Debian 12's testssl 3.0.8 with OpenSSL 3.0.19).
    "engine_problem": "the scanner's openssl has no GOST engine",
    # The scanner's openssl is too old for some checks (not our server's).
    "too_old_openssl": "the scanner's openssl is old",
    "old_fart": "the scanner's openssl is very old",
}


@contextmanager
def server(log: Path, *args: str) -> Iterator[int]:
    """``tlsecho serve`` logging to a file (a pipe nobody reads would fill up
    under a scanner's hundreds of connections and block the server)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*TLSECHO, "serve", "--host", "127.0.0.1", "--port", "0", *args],
            stderr=out,
            stdout=subprocess.DEVNULL,
        )
    port = 0
    deadline = time.monotonic() + 30
    while not port and time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines():
            if "listening on " in line:
                port = int(line.rsplit(":", 1)[1])
        time.sleep(0.05)
    if not port:
        proc.kill()
        raise SystemExit(f"scan: tlsecho serve did not start: {log.read_text()[-500:]}")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if "Traceback" in log.read_text():
            raise SystemExit(f"scan: the server logged a traceback, see {log}")


def pki(directory: Path, days: int) -> dict[str, Path]:
    directory.mkdir()
    subprocess.run(
        [*TLSECHO, "cert", "--ca", "--out", str(directory), "--days", str(days)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return {n: directory / f"{n}.crt" for n in ("ca", "server")} | {"key": directory / "server.key"}


def sslyze(port: int, ca: Path, profile: str) -> tuple[bool, str]:
    p = subprocess.run(
        [SSLYZE, "--certinfo_ca_file", str(ca), f"--mozilla_config={profile}", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdict = [ln.strip() for ln in p.stdout.splitlines() if f"127.0.0.1:{port}:" in ln]
    detail = "; ".join(verdict) or p.stdout[-500:] + p.stderr[-500:]
    return p.returncode == 0, detail


def run_testssl(port: int, ca: Path, out: Path) -> list[dict[str, str]] | str:
    """testssl's findings, or why it could not scan."""
    out.unlink(missing_ok=True)
    cmd = ["testssl", "--quiet", "--color", "0", "--nodns", "none", "--warnings", "off"]
    cmd += ["--add-ca", str(ca), "--connect-timeout", "5", "--openssl-timeout", "5"]
    cmd += ["-p", "-s", "-f", "-P", "-S", "-U", "--jsonfile", str(out), f"127.0.0.1:{port}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if p.returncode >= 242 or not out.exists():  # testssl's scan errors
        return f"testssl failed to scan (exit {p.returncode}): {p.stderr[-500:]}"
    findings: list[dict[str, str]] = json.loads(out.read_text())
    return findings


def incomplete_checks(findings: list[dict[str, str]]) -> list[str]:
    """The checks testssl could not finish: severity WARN is testssl's own
    "this check failed" (e.g. ``sessionresumption_ticket``: one of its
    ``openssl s_client`` runs did not connect), not a grade of the server."""
    return sorted(
        f["id"]
        for f in findings
        if f.get("severity") == "WARN" and f.get("id") not in SCANNER_NOTICES
    )


def testssl(port: int, ca: Path, out: Path) -> tuple[bool, str]:
    """One testssl run; if a check could not finish, one more whole run, whose
    verdict counts (a check that fails twice fails the gate)."""
    findings = run_testssl(port, ca, out)
    if isinstance(findings, str):
        return False, findings
    incomplete = incomplete_checks(findings)
    if not incomplete:
        return judge_testssl(findings)
    print(f"note: testssl could not finish {', '.join(incomplete)}: scanning once more")
    findings = run_testssl(port, ca, out)
    if isinstance(findings, str):
        return False, findings
    return judge_testssl(findings)


def judge_testssl(findings: list[dict[str, str]]) -> tuple[bool, str]:
    """Fail on any finding about the server of severity MEDIUM or above; name
    the scanner's own notices and the private-CA ids, without failing."""
    about_server = [
        f for f in findings if f.get("id") not in IGNORED_IDS and f.get("id") not in SCANNER_NOTICES
    ]
    bad = [
        f"{f['severity']} {f['id']}: {f['finding']}"
        for f in about_server
        if f.get("severity") in BAD_SEVERITIES
    ]
    ignored = sorted({f["id"] for f in findings if f.get("id") in IGNORED_IDS})
    notices = sorted({f["id"] for f in findings if f.get("id") in SCANNER_NOTICES})
    for notice in notices:
        print(f"note: testssl {notice}: {SCANNER_NOTICES[notice]} (not a finding about tlsecho)")
    note = f"{len(findings)} findings, none MEDIUM or above (ignored: {', '.join(ignored)})"
    return not bad, "; ".join(bad) or note


def main() -> int:
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="tlsecho-scan-") as tmp:
        year = pki(Path(tmp) / "intermediate", 300)  # testssl wants > 60 days left
        args = ["--cert", str(year["server"]), "--key", str(year["key"])]
        with server(Path(tmp) / "intermediate.log", *args) as port:
            results.append(
                (
                    "sslyze mozilla intermediate (default profile)",
                    *sslyze(port, year["ca"], "intermediate"),
                )
            )
            results.append(
                (
                    "testssl.sh default configuration",
                    *testssl(port, year["ca"], Path(tmp) / "testssl.json"),
                )
            )
        short = pki(Path(tmp) / "modern", 90)  # modern wants <= 90-day certificates
        args = ["--cert", str(short["server"]), "--key", str(short["key"])]
        with server(Path(tmp) / "modern.log", *args, "--tls-profile", "modern") as port:
            results.append(
                (
                    "sslyze mozilla modern (--tls-profile modern)",
                    *sslyze(port, short["ca"], "modern"),
                )
            )
    failed = 0
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        failed += not ok
    print(f"scan: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.pop("OPENSSL_CONF", None)  # let tlsecho set its own groups
    sys.exit(main())
