"""Debian's HAProxy in front of two tlsecho servers, with contrib/haproxy/haproxy.cfg."""

from __future__ import annotations

import configparser
import hashlib
import json
import shlex
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TLSECHO, ServerProcess, start_server
from tlsecho.pki.certs import Pki

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "contrib" / "haproxy" / "haproxy.cfg"
SYSTEMD_UNIT = ROOT / "contrib" / "systemd" / "tlsecho.service"

pytestmark = pytest.mark.interop


def run_haproxy(
    cfg: str, backends: list[ServerProcess], tmp_path: Path
) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Debian's haproxy with ``cfg``: its front on a free port (a socket it
    inherits), the backends' addresses 127.0.0.1:1000N replaced by theirs."""
    front = socket.socket()
    front.bind(("127.0.0.1", 0))
    front.listen(128)
    cfg = cfg.replace("bind 127.0.0.1:10000", f"bind fd@{front.fileno()}")
    for n, srv in enumerate(backends, 1):
        cfg = cfg.replace(f"127.0.0.1:1000{n}\n", f"127.0.0.1:{srv.port}\n")
    (tmp_path / "haproxy.cfg").write_text(cfg)
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
        pass_fds=[front.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return front, haproxy


def test_haproxy_passthrough_with_proxy_v2(ca_pki: Pki, tmp_path: Path) -> None:
    args = ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)]
    args += ["--proxy-protocol", "v2", "--log-format", "json"]
    backends = [start_server(*args), start_server(*args)]
    front, haproxy = run_haproxy(HAPROXY_CFG.read_text(), backends, tmp_path)
    try:
        # Both backends are up once each has answered a health check.
        for srv in backends:
            if haproxy.poll() is not None:
                pytest.fail(f"haproxy exited: {haproxy.communicate()[0].decode()}")
            # HAProxy's check ends with a reset: the SSLSocket engine reads
            # the end first (its ticket write took the error), membio the reset.
            srv.wait_for_record(outcome="eof|error", tls_version="TLSv1.[23]", timeout=20)
        port = front.getsockname()[1]
        for i in range(6):
            p = subprocess.run(
                [
                    *TLSECHO,
                    "send",
                    "--port",
                    str(port),
                    "--cafile",
                    str(ca_pki.ca.cert),
                    "-q",
                    f"through haproxy {i}",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert p.returncode == 0, p.stderr
    finally:
        haproxy.terminate()
        out = haproxy.communicate(timeout=30)[0].decode()
        front.close()
        for srv in backends:
            assert srv.stop() == 0
    assert "ALERT" not in out, out
    served = []
    for srv in backends:
        records = [rec for rec in srv.records() if rec["outcome"] == "terminated"]
        served.append(len(records))
        for rec in records:
            # The real client address from the PROXY header, and the proxy's.
            assert rec["peer"].startswith("127.0.0.1:")
            assert rec["via"].startswith("127.0.0.1:")
            assert rec["peer"] != rec["via"]
    assert served == [3, 3]  # round robin: both backends served


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(SYSTEMD_UNIT.read_text())
    service = unit["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 20  # drain (10 s) + TLS close (10 s)
    # ExecStart is a valid tlsecho command line.
    from tlsecho.cli import build_parser

    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/tlsecho")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert args.listen == ["127.0.0.1:10000", "[::1]:10000"]


HAPROXY_HTTP_CFG = ROOT / "contrib" / "haproxy" / "haproxy-http.cfg"


@pytest.mark.slow
def test_haproxy_http_mode_health_checks_take_a_backend_out(ca_pki: Pki, tmp_path: Path) -> None:
    """HAProxy in HTTP mode, TLS to two --mode http backends, option httpchk
    on /health: SIGUSR1 flips one backend's /health, HAProxy takes it out,
    and every request goes to the other until it is flipped back."""
    args = ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--mode", "http"]
    args += ["--log-format", "json"]
    backends = [start_server(*args), start_server(*args)]
    cfg = HAPROXY_HTTP_CFG.read_text().replace("ca-file ca.crt", f"ca-file {ca_pki.ca.cert}")
    front, haproxy = run_haproxy(cfg, backends, tmp_path)
    port = front.getsockname()[1]

    def through_haproxy(prefix: str, n: int) -> list[int]:
        """n requests through HAProxy: how many each backend answered."""
        for i in range(n):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{prefix}{i}", timeout=10) as r:
                doc = json.loads(r.read())
            # What HAProxy forwarded, next to what arrived.
            assert doc["connection"]["x_forwarded_for"] == ["127.0.0.1"]
            assert doc["connection"]["peer"].startswith("127.0.0.1:")
        deadline = time.monotonic() + 10
        while True:  # the access records reach us a moment after the answers
            hits = [
                [r for r in s.records("request") if r["target"].startswith(f"/{prefix}")]
                for s in backends
            ]
            if sum(map(len, hits)) >= n or time.monotonic() > deadline:
                # h2 by ALPN, every request answered
                assert all((r["http_version"], r["status"]) == ("2", 200) for h in hits for r in h)
                return [len(h) for h in hits]
            time.sleep(0.05)

    try:
        for srv in backends:  # both up once each answered a health check
            if haproxy.poll() is not None:
                pytest.fail(f"haproxy exited: {haproxy.communicate()[0].decode()}")
            srv.wait_for_record(event="request", target="/health", status=200, timeout=20)
        assert through_haproxy("a", 4) == [2, 2]  # round robin over both
        backends[0].proc.send_signal(signal.SIGUSR1)  # echo1's /health: 503
        backends[0].wait_for_record(event="request", target="/health", status=503, timeout=20)
        time.sleep(1.0)  # fall 1: that failed check takes it out
        assert through_haproxy("b", 6) == [0, 6]
        backends[0].proc.send_signal(signal.SIGUSR1)  # and back: rise 1
        backends[0].wait_for(r"main: health: ok")
        time.sleep(1.0)
        assert through_haproxy("c", 4) == [2, 2]
    finally:
        haproxy.terminate()
        out = haproxy.communicate(timeout=30)[0].decode()
        front.close()
        for srv in backends:
            assert srv.stop() == 0
    assert "echo1 is DOWN" in out, out


HAPROXY_CLIENT_CERT_CFG = ROOT / "contrib" / "haproxy" / "haproxy-client-cert.cfg"


def test_haproxy_forwards_the_client_certificate(ca_pki: Pki, tmp_path: Path) -> None:
    """contrib/haproxy/haproxy-client-cert.cfg as it is: tlsbin behind it
    sees the client certificate HAProxy verified, in the PROXY v2 SSL TLV
    (its CN) and in X-Forwarded-Client-Cert; a client that forges the header
    without a certificate gets it deleted."""
    pem = tmp_path / "server.pem"
    pem.write_text(ca_pki.server.cert.read_text() + ca_pki.server.key.read_text())
    args = ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)]
    backend = start_server(*args, "--mode", "http", "--proxy-protocol", "v2")
    cfg = HAPROXY_CLIENT_CERT_CFG.read_text()
    cfg = cfg.replace("pki/server.pem", str(pem)).replace("pki/ca.crt", str(ca_pki.ca.cert))
    front, haproxy = run_haproxy(cfg, [backend], tmp_path)
    url = f"https://localhost:{front.getsockname()[1]}/get"

    def curl(*extra: str) -> dict[str, Any]:
        c = subprocess.run(
            ["curl", "-sS", "-m", "10", "--cacert", str(ca_pki.ca.cert), *extra, url],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert c.returncode == 0, c.stderr
        doc: dict[str, Any] = json.loads(c.stdout)["connection"]
        return doc

    try:
        with_cert = curl("--cert", str(ca_pki.client.cert), "--key", str(ca_pki.client.key))
        (ssl_tlv,) = [t for t in with_cert["proxy_protocol"]["tlvs"] if t["name"] == "ssl"]
        assert ssl_tlv["cn"] == "tlsecho client" and ssl_tlv["verified"] is True
        assert "cert_conn" in ssl_tlv["client"]
        (xfcc,) = with_cert["x_forwarded_client_cert"]
        der = ssl.PEM_cert_to_DER_cert(ca_pki.client.cert.read_text())
        assert xfcc["Hash"] == hashlib.sha256(der).hexdigest()
        assert "CN=tlsecho client" in xfcc["Subject"]
        forged = curl("-H", 'X-Forwarded-Client-Cert: Subject="CN=admin"')
        assert forged["x_forwarded_client_cert"] == []
        (ssl_tlv,) = [t for t in forged["proxy_protocol"]["tlvs"] if t["name"] == "ssl"]
        assert "cert_conn" not in ssl_tlv["client"] and "cn" not in ssl_tlv
    finally:
        haproxy.terminate()
        out = haproxy.communicate(timeout=30)[0].decode()
        front.close()
        assert backend.stop() == 0, out
