"""Headless Chromium (Debian's ``chromium``) loads ``serve --mode http``'s
page over TLS, trusting the test CA through its own NSS database: the
rendered text says what the browser sent, and the screenshot is kept as a
test artefact (``$TLSECHO_ARTEFACTS``, else ``build/test-artefacts``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, start_server, stop_cleanly
from tlsecho.pki.certs import Pki

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("TLSECHO_ARTEFACTS", ROOT / "build" / "test-artefacts"))


def chromium(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={home / 'profile'}",
        *args,
    ]
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(cmd, capture_output=True, timeout=90, check=False, env=env)


def trust(home: Path, ca: Path) -> None:
    """The test CA in Chromium's NSS database ($HOME/.pki/nssdb)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "tlsecho-test", "-i", str(ca)],
        check=True,
    )


def test_chromium_renders_what_it_sent(ca_pki: Pki, tmp_path: Path) -> None:
    trust(tmp_path, ca_pki.ca.cert)
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--mode", "http")
    )
    try:
        url = f"https://localhost:{srv.port}/"
        dom = chromium(tmp_path, "--dump-dom", url)
        page = dom.stdout.decode()
        assert "What your browser sent" in page, dom.stderr.decode()[-2000:]
        # The JA4 on the page is the one the server logged for that connection.
        (line,) = srv.wait_for(r"GET / HTTP/2 200$")
        tag = line.split(":")[0]
        done = srv.wait_for(rf"^{re.escape(tag)}: done ")[0]
        ja4 = done.split(" ja4=")[1].split()[0]
        assert ja4.startswith("t13d") and "h2_" in ja4 and ja4 in page
        assert "HeadlessChrome" in page  # its User-Agent, in the request table
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / "chromium-tlsbin-page.png"
        shot.unlink(missing_ok=True)
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", url)
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    finally:
        stop_cleanly(srv)


def test_lab_in_http_mode_with_curl_and_chromium(tmp_path: Path) -> None:
    """Issue 17: `tlsecho lab --mode http` serves the catalog as HTTPS
    endpoints (badssl.com's use): curl and Chromium meet each promise."""
    out = tmp_path / "lab"
    manifest = out / "manifest.json"
    cmd = [*TLSECHO, "lab", "--mode", "http", "--port", "0", "--out", str(out)]
    with subprocess.Popen(
        [*cmd, "--manifest", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("manifest: "):
                    break
            doc = json.loads(manifest.read_text())
            assert doc["mode"] == "http" and "HTTPS" in doc["protocol"]
            port = {e["name"]: e["port"] for e in doc["endpoints"]}

            def curl(name: str) -> subprocess.CompletedProcess[bytes]:
                url = f"https://localhost:{port[name]}/get"
                cmd = ["curl", "-sS", "-m", "10", "--cacert", doc["ca"], url]
                return subprocess.run(cmd, capture_output=True, timeout=30, check=False)

            ok = curl("ok")
            assert ok.returncode == 0 and json.loads(ok.stdout)["tls"]["version"] == "TLSv1.3"
            assert curl("expired").returncode == 60  # certificate problem
            assert curl("alert-handshake-failure").returncode == 35  # the alert
            trust(tmp_path, Path(doc["ca"]))
            dom = chromium(tmp_path, "--dump-dom", f"https://localhost:{port['ok']}/")
            assert "What your browser sent" in dom.stdout.decode(), dom.stderr.decode()[-2000:]
            bad = chromium(tmp_path, "--dump-dom", f"https://localhost:{port['expired']}/")
            assert "What your browser sent" not in bad.stdout.decode()
        finally:
            proc.terminate()
            tail = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "served" in tail, tail
