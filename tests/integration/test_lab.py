"""``tlsecho lab``: the whole catalog in one command, its manifest, and its
promises against clients nobody here wrote (openssl s_client, curl, node),
plus the example a library team copies (Python's ssl against every endpoint
through the ``tlsecho_lab`` fixture), run as it is."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TLSECHO
from tlsecho.lab.endpoints import MESSAGE, catalog

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("lab")
    manifest = out / "manifest.json"
    with subprocess.Popen(
        [*TLSECHO, "lab", "--port", "0", "--out", str(out), "--manifest", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        table = []
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            table.append(line)
            if line.startswith("manifest: ") or time.monotonic() > deadline:
                break
        assert manifest.exists(), "".join(table) + (proc.stderr.read() if proc.stderr else "")
        doc = json.loads(manifest.read_text())
        doc["table"] = "".join(table)
        yield doc
        proc.terminate()
        tail = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0 and "served" in tail, tail


def endpoint(lab: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in lab["endpoints"] if e["name"] == name)


def test_one_command_starts_the_whole_catalog(lab: dict[str, Any]) -> None:
    names = [e["name"] for e in lab["endpoints"]]
    assert names == [e.name for e in catalog()] and len(names) == 36
    assert len({e["port"] for e in lab["endpoints"]}) == 36  # a port each
    for e in lab["endpoints"]:
        assert e["expect_text"] == f"{e['expect']['result']}: {e['expect']['detail']}"
        assert f"{e['port']:>5}  {e['name']}" in lab["table"]  # the person's table
    assert Path(lab["ca"]).exists() and Path(lab["client_cert"]).exists()


CERTIFICATES = [e.name for e in catalog() if e.kind == "certificate"]


@pytest.mark.parametrize("name", CERTIFICATES)
def test_openssl_s_client_keeps_each_certificate_promise(lab: dict[str, Any], name: str) -> None:
    e = endpoint(lab, name)
    p = subprocess.run(
        [
            *("openssl", "s_client", "-connect", f"{e['host']}:{e['port']}"),
            *("-servername", "localhost", "-verify_hostname", "localhost"),
            *("-CAfile", lab["ca"], "-verify_return_error", "-ign_eof"),
        ],
        input=MESSAGE + b"\0",
        capture_output=True,
        timeout=30,
        check=False,
    )
    out = (p.stdout + p.stderr).decode(errors="replace").lower()
    if e["expect"]["result"] == "reject":
        assert p.returncode != 0, out[-800:]
        detail = e["expect"]["detail"].lower()
        # s_client says "hostname mismatch"; its verify messages are OpenSSL's own.
        assert detail in out or (name == "wrong-host" and "mismatch" in out), out[-800:]
    else:
        assert p.returncode == 0 and MESSAGE.decode() in out, out[-800:]


@pytest.mark.parametrize("name", CERTIFICATES)
def test_curl_keeps_each_certificate_promise(lab: dict[str, Any], name: str) -> None:
    e = endpoint(lab, name)
    p = subprocess.run(
        [
            *("curl", "-sS", "-m", "5", "--cacert", lab["ca"]),
            *("--resolve", f"localhost:{e['port']}:127.0.0.1"),
            f"https://localhost:{e['port']}/",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if e["expect"]["result"] == "reject":
        assert p.returncode == 60, p.stderr  # "SSL certificate problem" (60)
    else:
        assert p.returncode not in (35, 60), p.stderr  # past TLS: an echo is no HTTP


NODE_FAULTS = [
    ("alert-handshake-failure", "handshake failure"),
    ("alert-protocol-version", "protocol version"),
    ("alert-unrecognized-name", "unrecognized name"),
    ("alert-internal-error", "internal error"),
    ("corrupt", "bad record mac"),
    ("reset-after-hello", "ECONNRESET"),
    ("ok", "echo hello, lab"),
    ("slice", "echo hello, lab"),
    ("latency", "echo hello, lab"),
]


@pytest.mark.parametrize(("name", "want"), NODE_FAULTS)
def test_node_tls_meets_the_faults(lab: dict[str, Any], name: str, want: str) -> None:
    e = endpoint(lab, name)
    script = f"""
    const tls = require('tls'); const fs = require('fs'); let got = '';
    const s = tls.connect({{host: '127.0.0.1', port: {e["port"]}, servername: 'localhost',
      ca: fs.readFileSync({json.dumps(lab["ca"])})}}, () => s.write('hello, lab\\0'));
    s.on('data', (d) => {{ got += d; }});
    s.on('end', () => {{ console.log('echo ' + got); process.exit(0); }});
    s.on('error', (err) => {{
      console.log('error ' + err.code + ' ' + err.message); process.exit(0); }});
    """
    p = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30)
    assert want.lower() in p.stdout.lower(), p.stdout + p.stderr


@pytest.mark.slow
def test_the_python_ssl_example_runs_against_every_endpoint() -> None:
    """examples/test_lab_python_ssl.py, as a user runs it (the fixture comes
    with tlsecho's pytest plugin)."""
    p = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            str(ROOT / "examples" / "test_lab_python_ssl.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert f"{len(catalog())} passed" in p.stdout


def test_a_second_lab_on_the_same_ports_changes_nothing(lab: dict[str, Any]) -> None:
    """Issue 17: a second lab failed rightly (address already in use) but had
    already rewritten the shared ca.crt, so the first lab's clients stopped
    trusting it. Every port is now checked before anything is written."""
    ca = Path(lab["ca"])
    before = ca.read_bytes()
    port = min(e["port"] for e in lab["endpoints"])
    p = subprocess.run(
        [*TLSECHO, "lab", "--port", str(port), "--out", str(ca.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode != 0 and "address already in use" in p.stderr.lower(), p.stderr
    assert "Traceback" not in p.stderr
    assert ca.read_bytes() == before
    expired = endpoint(lab, "expired")
    s = subprocess.run(
        [
            *("openssl", "s_client", "-connect", f"127.0.0.1:{expired['port']}"),
            *("-CAfile", str(ca), "-servername", "localhost", "-verify_return_error"),
        ],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert b"certificate has expired" in s.stdout + s.stderr


# What gnutls-cli (GnuTLS, Debian's gnutls-bin) says for each outcome: a
# second TLS stack, nobody's here, must agree with every promise the
# manifest makes as strict, and may differ only where it names a policy.
GNUTLS_ALERT_CODES = {
    "handshake_failure": 40,
    "protocol_version": 70,
    "internal_error": 80,
    "unrecognized_name": 112,
}
GNUTLS_ERRORS = {
    # A GnuTLS application is told "non-properly terminated" both for a FIN
    # and for a reset met on a write (docs/lab.md): either is the promise.
    "reset": ("Error in the pull function", "non-properly terminated"),
    "closed": ("non-properly terminated",),
    "bad record mac": ("Decryption has failed",),
    "truncated": ("non-properly terminated",),
    "not tls": ("An unexpected TLS packet was received",),
}


def gnutls_cli(lab: dict[str, Any], e: dict[str, Any], wait: float = 3.0) -> tuple[str, str]:
    """Run gnutls-cli against the endpoint, its stdin kept open (gnutls-cli
    fed by a closing pipe reports a truncated stream as a normal close):
    ("exit" or "timeout", what it printed)."""
    cmd = ["gnutls-cli", "--x509cafile", lab["ca"], "-p", str(e["port"]), "localhost"]
    if e["needs"].get("client_cert"):
        cmd += ["--x509certfile", lab["client_cert"], "--x509keyfile", lab["client_key"]]
    if e["needs"].get("alpn"):
        cmd += ["--alpn", ",".join(e["needs"]["alpn"])]
    with subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as p:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(MESSAGE + b"\0")
        p.stdin.flush()
        try:
            p.wait(wait)
            how = "exit"
        except subprocess.TimeoutExpired:
            how = "timeout"
            p.kill()
        out = p.stdout.read().decode(errors="replace")
        p.stdin.close()
    return how, out


@pytest.mark.parametrize("name", [e.name for e in catalog()])
def test_gnutls_keeps_every_promise(lab: dict[str, Any], name: str) -> None:
    e = endpoint(lab, name)
    expect = e["expect"]
    how, out = gnutls_cli(lab, e)
    echoed = MESSAGE.decode() in out
    clean = "Peer has closed the GnuTLS connection" in out
    rejected = "PKI verification of server certificate failed" in out or (
        "Key usage violation" in out
    )
    result = expect["result"]
    if result == "reject":
        if expect["strict"]:
            assert rejected and not echoed, out[-600:]
        else:  # a policy: GnuTLS may keep it or not, but never half-way
            assert rejected != (echoed and clean), out[-600:]
    elif result == "echo":
        assert how == "exit" and echoed and clean, out[-600:]
    elif result == "alert":
        assert f"Received alert [{GNUTLS_ALERT_CODES[expect['detail']]}]" in out, out[-600:]
    elif result == "error":
        assert any(m in out for m in GNUTLS_ERRORS[expect["detail"]]), out[-600:]
        if expect["detail"] == "truncated":
            assert echoed and not clean, out[-600:]
    elif result == "cut":
        assert "hello" in out and not echoed and clean, out[-600:]
    else:  # timeout: nothing (or the first bytes) and no end
        assert how == "timeout" and not echoed, out[-600:]
