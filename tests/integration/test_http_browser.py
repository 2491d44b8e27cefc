"""Headless Chromium (Debian's ``chromium``) loads ``serve --mode http``'s
page over TLS, trusting the test CA through its own NSS database: the
rendered text says what the browser sent, and the screenshot is kept as a
test artefact (``$TLSECHO_ARTEFACTS``, else ``build/test-artefacts``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import start_server, stop_cleanly
from tlsecho.certs import Pki

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
