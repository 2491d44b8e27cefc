"""The hostile-input suite (issue 4): each case runs against a real server
while a canary session keeps getting byte-exact echoes; the server stays up,
logs each event in one line without a traceback, and returns to its baseline
of descriptors with bounded memory."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.conftest import pump
from tests.hostile.conftest import (
    Harness,
    fd_count,
    read_to_close,
    recv_exactly,
    reset,
    rss_kib,
)

Make = Callable[..., Harness]


def client_hello() -> bytes:
    """A real TLS ClientHello, as bytes (made with an in-memory SSLObject)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


SSLV2_HELLO = (
    bytes([0x80, 0x2E, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10])
    + bytes.fromhex("0700c0050080030080010080080080060040040080020080")[:21]
    + os.urandom(16)
)
_V3_BODY = b"\x03\x00" + os.urandom(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
SSLV3_HELLO = (
    b"\x16\x03\x00"
    + (len(_V3_BODY) + 4).to_bytes(2, "big")
    + b"\x01"
    + len(_V3_BODY).to_bytes(3, "big")
    + _V3_BODY
)


def s_client(h: Harness, *args: str, data: bytes = b"", timeout: float = 30) -> bytes:
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{h.port}", "-CAfile", str(h.ca), *args]
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)
    return p.stdout + p.stderr


# 1, 2, 3 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "http request"),  # 1
        (bytes(range(256)) * 8, "wrong version number"),  # 2 (random-looking bytes)
        (SSLV2_HELLO, ""),  # 3 SSLv2
        (SSLV3_HELLO, ""),  # 3 SSLv3
    ],
    ids=["http", "random-bytes", "sslv2-hello", "sslv3-hello"],
)
def test_not_tls(hostile: Make, payload: bytes, reason: str) -> None:
    h = hostile()
    with h.raw() as s:
        s.sendall(payload)
        read_to_close(s)
    line = h.logged(r"end=handshake-failed reason=")[0]
    assert reason in line
    h.settle()


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_refused(hostile: Make, version: str) -> None:
    h = hostile()
    out = s_client(h, version, "-cipher", "DEFAULT@SECLEVEL=0", data=b"x\x00")
    assert b"Cipher is (NONE)" in out or b"alert" in out
    h.logged(r"end=handshake-failed reason='(unsupported protocol|no protocols available)'")
    h.settle()


# 4, 5, 6 ---------------------------------------------------------------------------
def test_client_hello_then_silence(hostile: Make) -> None:
    h = hostile()
    with h.raw() as s:
        s.sendall(client_hello())
        started = time.monotonic()
        read_to_close(s)  # the server gives up at the handshake timeout (1 s)
        assert time.monotonic() - started < 5
    h.logged(r"end=handshake-failed reason='handshake timed out'")
    h.settle()


def test_tcp_connect_then_silence(hostile: Make) -> None:
    h = hostile()
    with h.raw() as s:
        assert read_to_close(s) == b""
    h.logged(r"end=handshake-failed reason='handshake timed out'")
    h.settle()


def test_dripped_handshake_is_bounded(hostile: Make) -> None:
    """One byte every 100 ms: the absolute handshake timeout still ends it."""
    h = hostile()
    hello = client_hello()
    with h.raw() as s:
        started = time.monotonic()
        try:
            for b in hello:
                s.sendall(bytes([b]))
                time.sleep(0.1)
                if time.monotonic() - started > 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < 5
    h.logged(r"end=handshake-failed reason='handshake timed out'")
    h.settle()


# 7, 8 --------------------------------------------------------------------------------
def test_reset_mid_handshake(hostile: Make) -> None:
    h = hostile()
    s = h.raw()
    s.sendall(client_hello())
    time.sleep(0.1)
    reset(s)
    h.logged(r"end=handshake-failed reason='(reset by peer|eof occurred in violation of protocol)'")
    h.settle()


def test_reset_mid_message(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"half a message")
    assert recv_exactly(s, 14) == b"half a message"
    reset(s)
    # OpenSSL reports a reset after application data as an unexpected EOF.
    h.logged(r"in=14 out=14 .*end=(eof|error) reason='(reset by peer|closed without close_notify)'")
    h.settle()


def test_reset_after_nul_before_reading_the_echo(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"x" * 100_000 + b"\x00")
    reset(s)
    h.logged(r"in=(\d+) .*end=(terminated|error)")
    h.settle()


def test_close_without_close_notify(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"abc")
    assert recv_exactly(s, 3) == b"abc"
    socket.socket.close(s)  # the TCP FIN, no TLS close_notify
    h.logged(r"in=3 out=3 .*end=eof reason='closed without close_notify'")
    h.settle()


# 9, 10 -------------------------------------------------------------------------------
def test_5000_idle_tls_connections(hostile: Make) -> None:
    h = hostile("--idle-timeout", "60")
    socks = []
    try:
        for _ in range(5000):
            socks.append(h.connect())
        rss_per_conn = (rss_kib(h.pid) - h.rss) / 5000
        assert fd_count(h.pid) >= h.fds + 5000
        # Still serving, promptly, with 5000 others open.
        with h.connect() as s:
            s.sendall(b"one more\x00")
            assert read_to_close(s) == b"one more"
        assert rss_per_conn < 64, f"{rss_per_conn:.1f} KiB per idle TLS connection"
    finally:
        for s in socks:
            s.close()
    h.settle(timeout=60, rss_slack_kib=200 * 1024)


def test_more_connections_than_the_limit(hostile: Make) -> None:
    h = hostile("--max-connections", "5")  # the canary holds one
    extra = [h.connect() for _ in range(4)]
    # A fifth waits in the backlog: TCP connects, TLS does not answer yet.
    waiting = h.raw()
    waiting.settimeout(1)
    h.logged(r"at --max-connections 5: not accepting until a connection closes")
    with pytest.raises(TimeoutError):
        waiting.recv(1)
    extra[0].sendall(b"bye\x00")
    assert read_to_close(extra[0]) == b"bye"
    extra[0].close()
    # Now it is accepted and served.
    ctx = ssl.create_default_context(cafile=str(h.ca))
    waiting.settimeout(10)
    with ctx.wrap_socket(waiting, server_hostname="localhost") as s:
        s.sendall(b"my turn\x00")
        assert read_to_close(s) == b"my turn"
    for s in extra[1:]:
        s.close()
    h.settle()


# 11, 12, 13 ----------------------------------------------------------------------------
def test_peer_sends_200_mb_and_never_reads(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.setblocking(False)
    sent, chunk = 0, b"z" * 65536
    deadline = time.monotonic() + 20
    stalled_since = None
    while sent < 200 << 20 and time.monotonic() < deadline:
        try:
            sent += s.send(chunk)
            stalled_since = None
        except (ssl.SSLWantWriteError, BlockingIOError):
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 2:
                break  # the server stopped reading: backpressure
            time.sleep(0.01)
    assert sent < 64 << 20, f"the server took {sent >> 20} MB without its echo being read"
    assert rss_kib(h.pid) < h.rss + 20 * 1024
    reset(s)
    h.settle()


def test_100_mb_message_streams_back_with_flat_memory(hostile: Make) -> None:
    h = hostile("--idle-timeout", "30")
    total = 100 << 20
    block = bytes(range(1, 256)) * 257  # 65535 bytes, no NUL
    message = block * (total // len(block)) + block[: total % len(block)]
    state = {"got": 0, "peak": 0, "next_sample": 0}

    def check(chunk: bytes) -> None:
        at = state["got"]
        assert chunk == message[at : at + len(chunk)], f"wrong echo at byte {at}"
        state["got"] = at + len(chunk)
        if state["got"] >= state["next_sample"]:
            state["peak"] = max(state["peak"], rss_kib(h.pid))
            state["next_sample"] += 4 << 20

    with h.connect() as s:
        pump(s, message + b"\x00", timeout=120, on_chunk=check)
    assert state["got"] == total
    assert state["peak"] < h.rss + 30 * 1024, (
        f"RSS peaked at {state['peak']} KiB (baseline {h.rss})"
    )
    h.logged(rf"in={total + 1} out={total} .*end=terminated")
    h.settle()


def test_over_long_line(hostile: Make) -> None:
    h = hostile("--mode", "line", "--max-line", "1000")
    with h.connect() as s:
        s.sendall(b"fine\n" + b"y" * 5000 + b"\n")
        assert read_to_close(s) == b"fine\n"
    h.logged(r"line longer than 1000 bytes: closing connection")
    h.settle()
