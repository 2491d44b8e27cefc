"""Debian's HAProxy in front of two tlsecho servers, with contrib/haproxy/haproxy.cfg."""

from __future__ import annotations

import configparser
import shlex
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, start_server
from tlsecho.certs import Pki

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "contrib" / "haproxy" / "haproxy.cfg"
SYSTEMD_UNIT = ROOT / "contrib" / "systemd" / "tlsecho.service"

pytestmark = pytest.mark.interop


def test_haproxy_passthrough_with_proxy_v2(ca_pki: Pki, tmp_path: Path) -> None:
    args = ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)]
    args += ["--proxy-protocol", "v2"]
    backends = [start_server(*args), start_server(*args)]
    front = socket.socket()
    front.bind(("127.0.0.1", 0))
    front.listen(128)
    cfg = HAPROXY_CFG.read_text()
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
    try:
        # Both backends are up once each has answered a health check.
        for srv in backends:
            if haproxy.poll() is not None:
                pytest.fail(f"haproxy exited: {haproxy.communicate()[0].decode()}")
            srv.wait_for(r"end=eof", timeout=20)
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
        lines = [ln for ln in srv.lines() if "end=terminated" in ln]
        served.append(len(lines))
        for ln in lines:
            # The real client address from the PROXY header, and the proxy's.
            assert " peer=127.0.0.1:" in ln
            assert " via=127.0.0.1:" in ln
            assert ln.split(" peer=")[1].split()[0] != ln.split(" via=")[1].split()[0]
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
