"""The framing modes (raw, line) end to end, with socat and send."""

from __future__ import annotations

from tests.helpers import (
    StartServer,
    pki_args,
    quiet_send,
    socat,
)
from tlsecho.pki.certs import Pki

send = quiet_send


# -- framing modes --------------------------------------------------------------
def test_raw_mode_with_socat(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "raw")
    data = b"raw \x00 bytes\nwith NULs\x00 and newlines\r\n" * 1000
    p = socat(srv.port, ca_pki.ca.cert, data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    srv.wait_for_record(bytes_in=len(data), bytes_out=len(data), discarded=0, outcome="eof")


def test_raw_mode_with_send(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "raw")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "raw", "a\x01b", "c")
    assert p.returncode == 0, p.stderr
    stdin = bytes(range(256)) * 2000  # NULs included: raw carries anything
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "raw", "-", stdin=stdin)
    assert p.returncode == 0, p.stderr
    assert p.stdout == stdin


def test_line_mode_with_socat(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line", "-v")
    p = socat(srv.port, ca_pki.ca.cert, b"one\ntwo\r\n\nthree")
    assert p.returncode == 0, p.stderr
    # Complete lines come back as sent; the unterminated "three" cannot.
    assert p.stdout == b"one\ntwo\r\n\n"
    srv.wait_for_record(bytes_in=15, bytes_out=10, discarded=5, outcome="eof")


def test_line_mode_line_too_long(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line", "--max-line", "10")
    p = socat(srv.port, ca_pki.ca.cert, b"short\n" + b"x" * 20 + b"\nnever\n")
    assert p.stdout == b"short\n"
    srv.wait_for(r": line longer than 10 bytes: closing connection$")
    srv.wait_for_record(bytes_out=6, outcome="framing-error")
    # Everyone else is still served.
    assert socat(srv.port, ca_pki.ca.cert, b"ok\n").stdout == b"ok\n"


def test_line_mode_with_send(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "line", "first\nsec", "ond")
    assert p.returncode == 0, p.stderr
    srv.wait_for_record(
        bytes_in=13, bytes_out=13, outcome="eof"
    )  # "second" got its newline from send
