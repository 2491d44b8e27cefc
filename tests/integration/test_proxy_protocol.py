"""The PROXY protocol, v1 and v2, whole, dripped, malformed, and send's header."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.helpers import (
    StartServer,
    pki_args,
    quiet_send,
)
from tlsecho.pki.certs import Pki

send = quiet_send


# -- PROXY protocol -------------------------------------------------------------------
V1 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x1b"  # PROXY, TCP4, 12 + 15 bytes
    + bytes([192, 0, 2, 20, 198, 51, 100, 1])
    + (40000).to_bytes(2, "big")
    + (443).to_bytes(2, "big")
    + b"\x02\x00\x0cexample.test"  # TLV authority
)
V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def proxied_echo(port: int, ca: Path, header: bytes, drip: bool = False) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if drip:
        for b in header:
            raw.sendall(bytes([b]))
            time.sleep(0.005)
    else:
        raw.sendall(header)
    ctx = ssl.create_default_context(cafile=str(ca))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"proxied\x00")
        out = b""
        while chunk := s.recv(100):
            out += chunk
        return out


@pytest.mark.parametrize("mode", ["v1", "any"])
def test_proxy_v1(run_server: StartServer, ca_pki: Pki, mode: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", mode)
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1) == b"proxied"
    rec = srv.wait_for_record(outcome="terminated")[0]
    assert rec["logger"] == "echo_192.0.2.10_56324"
    assert rec["peer"] == "192.0.2.10:56324"
    assert rec["via"].startswith("127.0.0.1:")


@pytest.mark.parametrize("mode", ["v2", "any"])
def test_proxy_v2_with_tlvs(run_server: StartServer, ca_pki: Pki, mode: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", mode, "-v")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2) == b"proxied"
    srv.wait_for(r"PROXY v2 PROXY TCP4 from 192.0.2.20:40000 via .* tlvs=authority=example.test")
    srv.wait_for_record(peer=r"192\.0\.2\.20:40000", via=r"127\.0\.0\.1:\d+")


def test_proxy_v2_local_uses_the_real_peer(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "v2")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2_LOCAL) == b"proxied"
    rec = srv.wait_for_record(outcome="terminated")[0]
    assert rec["via"] is None
    assert rec["peer"].startswith("127.0.0.1:")


def test_proxy_header_dripped_byte_by_byte(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "any")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1, drip=True) == b"proxied"
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2, drip=True) == b"proxied"


@pytest.mark.parametrize(
    ("junk", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a PROXY header"),
        (b"PROXY TCP4 " + b"9" * 120 + b"\r\n", "longer than 107 bytes"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "bad port"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04", "cannot hold"),
    ],
)
def test_proxy_malformed_is_one_line(
    run_server: StartServer, ca_pki: Pki, junk: bytes, reason: str
) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "any")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        raw.sendall(junk)
        raw.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(100) == b""  # closed, nothing sent back
    rec = srv.wait_for_record(outcome="proxy-error")[0]
    assert reason in rec["reason"]
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1) == b"proxied"


def test_proxy_header_then_reset(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "v1")
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    raw.sendall(V1[:20])
    time.sleep(0.1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()
    srv.wait_for_record(
        outcome="proxy-error", reason="reset by peer|closed before the end of the PROXY header"
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_header(run_server: StartServer, ca_pki: Pki, version: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", version, "-v")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--proxy-header", version)
    assert p.returncode == 0, p.stderr
    srv.wait_for(rf"PROXY v{version[1]} PROXY TCP4 from 127.0.0.1:\d+ via 127.0.0.1:\d+")
