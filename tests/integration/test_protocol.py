"""The nul protocol over real TLS on loopback, TLS 1.2 and 1.3, both loops."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from tests.helpers import ServerProcess, pump
from tlsecho.errors import PLAIN_HTTP
from tlsecho.pki.certs import CertPair

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


@pytest.fixture
def server(server_json: ServerProcess) -> ServerProcess:
    """In this module the server logs JSON: the checks read its records."""
    return server_json


def client_ctx(pki: CertPair, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.cert))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def connect(
    server: ServerProcess, pki: CertPair, version: ssl.TLSVersion | None = None
) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return client_ctx(pki, version).wrap_socket(raw, server_hostname="localhost")


def read_to_close(s: ssl.SSLSocket) -> bytes:
    """Read until the server's close_notify (an unclean close raises)."""
    out = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_parts_then_nul(server: ServerProcess, pki: CertPair, version: ssl.TLSVersion) -> None:
    with connect(server, pki, version) as s:
        negotiated = s.version()
        assert negotiated == {VERSIONS[0]: "TLSv1.2", VERSIONS[1]: "TLSv1.3"}[version]
        for part in (b"This is the message. ", b"It will be sent ", b"in parts."):
            s.sendall(part)
        s.sendall(b"\x00")
        assert read_to_close(s) == b"This is the message. It will be sent in parts."
    (rec,) = server.wait_for_record(outcome="terminated")
    assert rec["tls_version"] == negotiated
    assert (rec["bytes_in"], rec["bytes_out"], rec["discarded"]) == (47, 46, 0)


@pytest.mark.parametrize(
    ("records", "echo", "discarded"),
    [
        ([b"hello\x00world"], b"hello", 5),  # mid-chunk: the original's bug
        ([b"\x00"], b"", 0),  # NUL first and alone
        ([b"\x00trailing"], b"", 8),
        ([b"abc", b"\x00"], b"abc", 0),  # NUL in a record of its own
        ([b"abc", b"\x00def", b"ghi"], b"abc", None),  # bytes after the NUL
    ],
)
def test_nul_anywhere_ends_the_session(
    server: ServerProcess, pki: CertPair, records: list[bytes], echo: bytes, discarded: int | None
) -> None:
    with connect(server, pki) as s:
        for r in records:
            s.sendall(r)  # one TLS record per sendall
            time.sleep(0.02)  # let each record be read on its own
        assert read_to_close(s) == echo
    (rec,) = server.wait_for_record(outcome="terminated")
    assert rec["bytes_out"] == len(echo)
    if discarded is not None:
        assert rec["discarded"] == discarded


def test_end_of_stream_without_nul(server: ServerProcess, pki: CertPair) -> None:
    with connect(server, pki) as s:
        s.sendall(b"no terminator")
        got = b""
        while len(got) < 13:
            got += s.recv(100)
        assert got == b"no terminator"
        s.unwrap()  # close_notify: end of stream without a NUL
    server.wait_for_record(outcome="eof", bytes_in=13, bytes_out=13)


def test_large_message_streams_back_whole(server: ServerProcess, pki: CertPair) -> None:
    """4 MiB sent while reading: every byte back once, in order."""
    import os

    payload = os.urandom(4 << 20).replace(b"\x00", b"\x01")
    with connect(server, pki) as s:
        got = pump(s, payload + b"\x00")
    assert len(got) == len(payload)
    assert got == payload
    server.wait_for_record(outcome="terminated", bytes_in=len(payload) + 1, bytes_out=len(payload))


def test_backpressure_a_peer_that_does_not_read_is_paused(
    server: ServerProcess, pki: CertPair
) -> None:
    """While we do not read the echo, the server must stop reading from us."""
    import select

    s = connect(server, pki)
    s.setblocking(False)
    chunk = b"x" * 65536
    sent = 0
    limit = 256 << 20
    while sent < limit:
        _, w, _ = select.select([], [s], [], 2.0)
        if not w:
            break  # blocked for 2 s: the server stopped reading
        try:
            sent += s.send(chunk)
        except ssl.SSLWantWriteError:
            continue
    assert sent < 64 << 20, f"server accepted {sent} bytes without its echo being read"
    # Now read: everything comes back, then the NUL ends the session.
    s.setblocking(True)
    s.settimeout(30)
    got = 0
    while got < sent:
        got += len(s.recv(1 << 20))
    s.sendall(b"\x00")
    assert read_to_close(s) == b""
    assert got == sent
    s.close()
    server.wait_for_record(outcome="terminated", bytes_in=sent + 1, bytes_out=sent)


def test_server_keeps_serving_after_abort_mid_message(server: ServerProcess, pki: CertPair) -> None:
    s = connect(server, pki)
    s.sendall(b"half a mess")
    s.recv(100)
    # Reset (SO_LINGER 0) mid-message, no close_notify.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    server.wait_for_record(outcome="error|eof")
    with connect(server, pki) as s2:
        s2.sendall(b"still here\x00")
        assert read_to_close(s2) == b"still here"


def test_plain_text_gets_one_log_line(server: ServerProcess, pki: CertPair) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        raw.settimeout(10)
        try:
            while raw.recv(100):
                pass
        except ConnectionResetError:
            pass
    (rec,) = server.wait_for_record(outcome="handshake-failed")
    assert rec["reason"] == PLAIN_HTTP
    with connect(server, pki) as s2:
        s2.sendall(b"ok\x00")
        assert read_to_close(s2) == b"ok"
