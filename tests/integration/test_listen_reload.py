"""--listen and certificate reloads (SIGHUP, --reload-interval)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.helpers import (
    TLSECHO,
    StartServer,
    echo_exactly,
    fingerprint,
    pki_args,
    quiet_send,
    s_client,
    served_certificate,
    start_server,
    tls_client,
)
from tlsecho.pki.certs import Pki, write_pair

send = quiet_send


# -- --listen ----------------------------------------------------------------------
def test_listen_twice(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    line = srv.wait_for(r"listening on ")[0]
    addrs = line.split("listening on ")[1].split(", ")
    assert len(addrs) == 2
    assert addrs[0].startswith("127.0.0.1:")
    assert addrs[1].startswith("[::1]:")
    for addr in addrs:
        host, port = addr.rsplit(":", 1)
        p = s_client(int(port), "-quiet", "-CAfile", str(ca_pki.ca.cert), host=host)
        assert p.stdout == b"hello"


def test_listen_bad_value(ca_pki: Pki) -> None:
    cmd = [*TLSECHO, "serve", *pki_args(ca_pki), "--listen", "::1:80"]
    p = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    assert p.returncode == 2  # a usage error
    assert "write IPv6 as [ADDRESS]:PORT" in p.stderr.decode() or "HOST:PORT" in p.stderr.decode()


# -- reload -------------------------------------------------------------------------
def served_fingerprint(port: int) -> str:
    return fingerprint(served_certificate(s_client(port, data=b"\x00").stdout))


def test_sighup_reload(ca_pki: Pki, tmp_path: Path) -> None:
    first = write_pair(tmp_path)
    srv = start_server("--cert", str(first.cert), "--key", str(first.key))
    try:
        old_fp = fingerprint(first.cert.read_bytes())
        assert served_fingerprint(srv.port) == old_fp
        before = tls_client(srv.port, first.cert)
        assert echo_exactly(before, b"before") == b"before"
        second = write_pair(tmp_path, force=True)
        new_fp = fingerprint(second.cert.read_bytes())
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for(rf"reloaded certificate .* sha256={new_fp}$")
        # The open connection continues; new ones see the new certificate.
        assert echo_exactly(before, b" still here") == b" still here"
        assert served_fingerprint(srv.port) == new_fp
        # A broken file changes nothing.
        second.cert.write_text("garbage\n")
        srv.proc.send_signal(signal.SIGHUP)
        line = srv.wait_for(r"reload failed")[0]
        assert "keeping the current certificates" in line
        assert "is not a PEM certificate" in line
        assert served_fingerprint(srv.port) == new_fp
        assert echo_exactly(before, b"!") == b"!"
        before.sendall(b"\x00")
        before.close()
    finally:
        assert srv.stop() == 0
    assert "Traceback" not in "\n".join(srv.lines())


def test_reload_interval(ca_pki: Pki, tmp_path: Path) -> None:
    first = write_pair(tmp_path)
    srv = start_server(
        "--cert", str(first.cert), "--key", str(first.key), "--reload-interval", "0.2"
    )
    try:
        # "listening on" comes after the watcher took its first look.
        second = write_pair(tmp_path, force=True)
        new_fp = fingerprint(second.cert.read_bytes())
        srv.wait_for(rf"reloaded certificate .* sha256={new_fp}$")
        assert served_fingerprint(srv.port) == new_fp
    finally:
        assert srv.stop() == 0
