"""The hostile-input suite (issue 4): each case runs against a real server
while a canary session keeps getting byte-exact echoes; the server stays up,
logs each event in one line without a traceback, and returns to its baseline
of descriptors with bounded memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import pump
from tests.hostile.helpers import (
    Harness,
    client_hello,
    fd_count,
    odd_groups,
    read_to_close,
    recv_exactly,
    reset,
    rss_kib,
)
from tlsecho.errors import PLAIN_HTTP
from tlsecho.pki.certs import Pki

Make = Callable[..., Harness]


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
    p = helpers.s_client(
        h.port, "-CAfile", str(h.ca), *args, data=data, timeout=timeout, ign_eof=False
    )
    return p.stdout + p.stderr


# 1, 2, 3 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", PLAIN_HTTP),  # 1
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
    rec = h.connection(outcome="handshake-failed", reason=".+")[0]
    assert reason in rec["reason"]
    h.settle()


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_refused(hostile: Make, version: str) -> None:
    h = hostile()
    out = s_client(h, version, "-cipher", "DEFAULT@SECLEVEL=0", data=b"x\x00")
    assert b"Cipher is (NONE)" in out or b"alert" in out
    h.connection(outcome="handshake-failed", reason="unsupported protocol|no protocols available")
    h.settle()


# 4, 5, 6 ---------------------------------------------------------------------------
def test_client_hello_then_silence(hostile: Make) -> None:
    h = hostile()
    with h.raw() as s:
        s.sendall(client_hello())
        started = time.monotonic()
        read_to_close(s)  # the server gives up at the handshake timeout (1 s)
        assert time.monotonic() - started < 5
    h.connection(outcome="handshake-failed", reason="handshake timed out")
    h.settle()


def test_tcp_connect_then_silence(hostile: Make) -> None:
    h = hostile()
    with h.raw() as s:
        assert read_to_close(s) == b""
    h.connection(outcome="handshake-failed", reason="handshake timed out")
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
    h.connection(outcome="handshake-failed", reason="handshake timed out")
    h.settle()


# 7, 8 --------------------------------------------------------------------------------
def test_reset_mid_handshake(hostile: Make) -> None:
    h = hostile()
    s = h.raw()
    s.sendall(client_hello())
    time.sleep(0.1)
    reset(s)
    h.connection(
        outcome="handshake-failed", reason="reset by peer|eof occurred in violation of protocol"
    )
    h.settle()


def test_reset_mid_message(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"half a message")
    assert recv_exactly(s, 14) == b"half a message"
    reset(s)
    # OpenSSL reports a reset after application data as an unexpected EOF.
    h.connection(
        bytes_in=14,
        bytes_out=14,
        outcome="eof|error",
        reason="reset by peer|closed without close_notify",
    )
    h.settle()


def test_reset_after_nul_before_reading_the_echo(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"x" * 100_000 + b"\x00")
    reset(s)
    h.connection(outcome="terminated|error")
    h.settle()


def test_close_without_close_notify(hostile: Make) -> None:
    h = hostile()
    s = h.connect()
    s.sendall(b"abc")
    assert recv_exactly(s, 3) == b"abc"
    socket.socket.close(s)  # the TCP FIN, no TLS close_notify
    h.connection(bytes_in=3, bytes_out=3, outcome="eof", reason="closed without close_notify")
    h.settle()


# 9, 10 -------------------------------------------------------------------------------
@pytest.mark.slow
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors(hostile: Make) -> None:
    """EMFILE in the accept loop: pause, log once per burst, never spin or
    die; serve again once descriptors are free."""
    # A long handshake timeout, so that no descriptor frees up (and starts a
    # new burst) while the pause is measured.
    h = hostile(
        "--max-connections",
        "1000",
        "--handshake-timeout",
        "30",
        prefix=("prlimit", "--nofile=40:40"),
    )
    waiting = [h.raw() for _ in range(60)]  # more than 40 descriptors' worth
    try:
        h.logged(r"main: accept paused for 100 ms: Too many open files")
        before = cpu_seconds(h.pid)
        time.sleep(1.0)
        assert cpu_seconds(h.pid) - before < 0.3, "the accept loop spins on EMFILE"
        assert sum("accept paused" in ln for ln in h.server.lines()) == 1  # once per burst
    finally:
        for s in waiting:
            s.close()
    # Handshake timeouts (1 s) free the descriptors; the backlog drains.
    h.connection(outcome="handshake-failed", count=60, timeout=30)
    with h.connect() as s:
        s.sendall(b"served again\x00")
        assert read_to_close(s) == b"served again"
    h.settle(timeout=30)


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
    h.connection(bytes_in=total + 1, bytes_out=total, outcome="terminated")
    h.settle()


def test_over_long_line(hostile: Make) -> None:
    h = hostile("--mode", "line", "--max-line", "1000")
    with h.connect() as s:
        s.sendall(b"fine\n" + b"y" * 5000 + b"\n")
        assert read_to_close(s) == b"fine\n"
    h.logged(r"line longer than 1000 bytes: closing connection")
    h.settle()


# 14 ---------------------------------------------------------------------------------------
def test_tls12_renegotiation_attempts(hostile: Make) -> None:
    """s_client's interactive "R" asks for a renegotiation; the server refuses
    (OP_NO_RENEGOTIATION) and the connection ends in one line."""
    h = hostile()
    out = s_client(h, "-tls1_2", data=b"R\nR\nR\n")
    assert b"RENEGOTIATING" in out
    h.connection(tls_version="TLSv1.2", outcome="error|eof")
    h.settle()


# 15 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["client-expired", "client-unknown-ca"])
def test_mtls_bad_client_certificates(hostile: Make, ca_pki: Pki, kind: str) -> None:
    h = hostile("--client-ca", str(ca_pki.ca.cert), "--client-auth", "optional")
    # optional, so that the canary (no certificate) is served; a certificate
    # that is presented must still verify.
    bad = ca_pki.bad[kind]
    out = s_client(h, "-cert", str(bad.cert), "-key", str(bad.key), "-quiet", data=b"x\x00")
    assert not out.endswith(b"x")  # no echo
    h.connection(outcome="handshake-failed", reason="certificate verify failed: .*")
    h.settle()


# 16, 17 -----------------------------------------------------------------------------------
def test_no_sni_and_unknown_sni(hostile: Make, ca_pki: Pki) -> None:
    other = ca_pki.bad["wrong-host"]
    h = hostile("--sni", f"wrong.host.invalid={other.cert}:{other.key}")
    for args in (["-noservername"], ["-servername", "unknown.example.test"]):
        out = s_client(h, *args, "-quiet", data=b"sni\x00")
        assert out.startswith(b"sni") or b"sni" in out
    h.connection(sni=None, outcome="terminated")
    h.connection(sni=r"unknown\.example\.test", outcome="terminated")
    h.settle()


def test_alpn_mismatch_with_alpn_required(hostile: Make) -> None:
    h = hostile("--alpn", "echo", "--alpn-required")
    out = s_client(h, "-alpn", "h2", "-quiet", data=b"x\x00")
    assert b"x" not in out.split(b"\n")[-1]
    h.connection(alpn=None, bytes_in=0, bytes_out=0, outcome="alpn-refused")
    h.settle()


# 18 ---------------------------------------------------------------------------------------
V1 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"\x16\x03\x01garbage-not-a-proxy-header", "not a PROXY header"),
        (b"PROXY TCP4 " + b"1" * 200 + b"\r\n", "longer than 107 bytes"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x02" + b"\x00" * 2, "cannot hold"),
    ],
    ids=["garbage", "v1-over-107", "v2-wrong-length"],
)
def test_malformed_proxy_headers(hostile: Make, header: bytes, reason: str) -> None:
    h = hostile("--proxy-protocol", "any")
    with h.raw() as s:
        s.sendall(header)
        read_to_close(s)
    h.connection(outcome="proxy-error", reason=f".*{reason}.*")
    h.settle()


def test_proxy_header_dripped_then_served(hostile: Make) -> None:
    h = hostile("--proxy-protocol", "v1")
    raw = h.raw()
    for b in V1:
        raw.sendall(bytes([b]))
        time.sleep(0.002)
    ctx = ssl.create_default_context(cafile=str(h.ca))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"dripped\x00")
        assert read_to_close(s) == b"dripped"
    h.connection(peer=r"192\.0\.2\.10:56324", via=r"127\.0\.0\.1:\d+", outcome="terminated")
    h.settle()


def test_proxy_header_then_reset(hostile: Make) -> None:
    h = hostile("--proxy-protocol", "v1")
    s = h.raw()
    s.sendall(V1)
    time.sleep(0.05)
    reset(s)
    h.connection(peer=r"192\.0\.2\.10:56324", outcome="handshake-failed")
    h.settle()


# 19 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("records", "echo"),
    [
        ([b"\x00"], b""),
        ([b"\x00after"], b""),
        ([b"split", b"\x00"], b"split"),
        ([b"abc\x00def", b"ghi"], b"abc"),
    ],
    ids=["nul-first", "nul-first-then-data", "nul-own-record", "data-after-nul"],
)
def test_nul_cases(hostile: Make, records: list[bytes], echo: bytes) -> None:
    h = hostile()
    with h.connect() as s:
        for r in records:
            try:
                s.sendall(r)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.02)
        assert read_to_close(s) == echo
    h.connection(bytes_out=len(echo), outcome="terminated")
    h.settle()


# 20 ---------------------------------------------------------------------------------------
def test_1000_connections_opened_and_closed_fast(hostile: Make) -> None:
    h = hostile()
    for i in range(1000):
        s = h.raw()
        if i % 2:
            reset(s)
        else:
            s.close()
    h.connection(outcome="handshake-failed", count=1000, timeout=60)
    h.settle(timeout=30)


# 21 ---------------------------------------------------------------------------------------
def test_sighup_with_a_broken_certificate(hostile: Make, ca_pki: Pki, tmp_path: Path) -> None:
    cert, key = tmp_path / "s.crt", tmp_path / "s.key"
    cert.write_bytes(ca_pki.server.cert.read_bytes())
    key.write_bytes(ca_pki.server.key.read_bytes())
    h = hostile("--cert", str(cert), "--key", str(key))
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    h.server.proc.send_signal(signal.SIGHUP)
    h.logged(r"main: reload failed, keeping the current certificates: ")
    with h.connect() as s:  # still the old, good certificate
        s.sendall(b"ok\x00")
        assert read_to_close(s) == b"ok"
    h.settle()


# 22 ---------------------------------------------------------------------------------------
def test_sigterm_with_100_sessions_mid_message(hostile: Make) -> None:
    """Every byte received before the signal is echoed: 0 lost."""
    h = hostile("--drain-timeout", "1")
    socks = [h.connect() for _ in range(100)]
    sent = []
    for i, s in enumerate(socks):
        data = f"session {i} ".encode() * (i + 1)
        s.sendall(data)
        sent.append(data)
    # The server has read everything sent before the signal once it is echoed.
    for s, data in zip(socks, sent, strict=True):
        assert recv_exactly(s, len(data)) == data
    assert h.canary is not None
    h.canary.finish()  # the canary's own session ends first, cleanly
    h.server.proc.send_signal(signal.SIGTERM)
    extra = 0
    for s in socks:
        extra += len(read_to_close(s))  # close_notify after the drain; no stray byte
        s.close()
    assert extra == 0
    assert h.server.proc.wait(30) == 0
    h.connection(outcome="server-shutdown", count=100)


# 23 ---------------------------------------------------------------------------------------
def test_record_with_a_corrupted_mac(hostile: Make) -> None:
    """A TLS session driven through memory BIOs, so one application-data
    record can be altered on the wire."""
    h = hostile()
    ctx = ssl.create_default_context(cafile=str(h.ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with h.raw() as raw:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        raw.sendall(outgoing.read())
        tls.write(b"this record will be corrupted")
        record = bytearray(outgoing.read())
        record[-3] ^= 0x01  # inside the AEAD tag
        raw.sendall(bytes(record))
        read_to_close(raw)
    h.connection(outcome="error", reason="decryption failed or bad record mac|bad record mac")
    h.settle()


# 24 ---------------------------------------------------------------------------------------
def test_flood_of_tiny_records(hostile: Make) -> None:
    h = hostile()
    with h.connect() as s:
        for _ in range(20_000):
            s.sendall(b"t")  # one TLS record per byte
        assert recv_exactly(s, 20_000) == b"t" * 20_000
        s.sendall(b"\x00")
        assert read_to_close(s) == b""
    h.connection(bytes_in=20001, bytes_out=20000, outcome="terminated")
    h.settle()


def test_flood_of_key_updates(hostile: Make) -> None:
    """s_client's interactive "K" sends a TLS 1.3 KeyUpdate asking for ours;
    each command must come in its own read, so they are written one by one."""
    h = hostile()
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{h.port}", "-CAfile", str(h.ca)]
    cmd.append("-tls1_3")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdin is not None
    for _ in range(100):
        proc.stdin.write(b"K\n")
        proc.stdin.flush()
        time.sleep(0.01)
    proc.stdin.write(b"after the updates\x00")
    proc.stdin.flush()
    time.sleep(0.5)
    proc.stdin.close()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    proc.wait(30)
    assert out.count(b"KEYUPDATE") >= 50
    assert b"after the updates" in out.split(b"KEYUPDATE")[-1]
    h.connection(tls_version="TLSv1.3", bytes_in=18, bytes_out=17, outcome="terminated")
    h.settle()


# 25 ---------------------------------------------------------------------------------------
def test_peer_that_stops_reading_and_writing(hostile: Make) -> None:
    h = hostile()  # --idle-timeout 2
    with h.connect() as s:
        s.sendall(b"then silence")
        assert recv_exactly(s, 12) == b"then silence"
        started = time.monotonic()
        assert read_to_close(s) == b""  # close_notify at the idle timeout
        assert 1.5 < time.monotonic() - started < 6
    h.logged(r": idle-timeout: closing connection")
    h.connection(bytes_in=12, bytes_out=12, outcome="idle-timeout")
    h.settle()


def test_max_session(hostile: Make) -> None:
    h = hostile("--max-session", "1", canary=False)  # would end the canary too
    with h.connect() as s:
        started = time.monotonic()
        while time.monotonic() - started < 5:
            try:
                s.sendall(b"busy")
                if recv_exactly(s, 4) != b"busy":
                    break
            except (OSError, ssl.SSLError):
                break
            time.sleep(0.05)
        assert time.monotonic() - started < 4
    h.logged(r": session-timeout: closing connection")
    h.connection(outcome="session-timeout")
    h.settle()


# The ClientHello reader (issue 12) --------------------------------------------------
def in_records(hello: bytes, size: int) -> bytes:
    """The same handshake message in TLS records of ``size`` bytes."""
    body = hello[5:]
    return b"".join(
        b"\x16\x03\x01" + len(body[i : i + size]).to_bytes(2, "big") + body[i : i + size]
        for i in range(0, len(body), size)
    )


def test_client_hello_in_one_byte_records_is_read_whole(hostile: Make) -> None:
    """~600 one-byte records, in 20 TCP segments: the reader waits for all of
    them (SO_RCVLOWAT), fingerprints the hello, then OpenSSL answers it."""
    from tlsecho.wire.clienthello import parse_client_hello

    h = hostile()
    hello = client_hello()
    data = in_records(hello, 1)
    with h.raw() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        step = len(data) // 20 + 1
        for i in range(0, len(data), step):
            s.sendall(data[i : i + step])
            time.sleep(0.01)
        s.settimeout(5)
        assert s.recv(5)[:1] == b"\x16"  # the ServerHello: OpenSSL took the same bytes
    h.connection(outcome="handshake-failed", ja4=parse_client_hello(hello).ja4())
    h.settle()


@pytest.mark.parametrize(
    ("mangle", "ja4"),
    [
        # supported_groups with a wrong (odd) inner length: still a JA4 (it
        # does not read that extension); OpenSSL refuses it as before.
        (lambda hello: odd_groups(hello), r"t13d\w+_\w{12}_\w{12}"),
        # A handshake message that says it is 100 KB: over the reader's cap.
        (lambda hello: hello[:6] + (100_000).to_bytes(3, "big") + hello[9:], None),
        # A hello that says it is 60 kB, in one-byte records: 70 kB of them
        # (more than the reader looks at), then silence.
        (
            lambda hello: in_records(b"\x16\x03\x01\xff\xff\x01\x00\xea\x60" + bytes(70_000), 1)[
                : 70 * 1024
            ],
            None,
        ),
    ],
    ids=["malformed-extension", "declares-100-kB", "70-kB-of-records"],
)
def test_bad_client_hellos(
    hostile: Make, mangle: Callable[[bytes], bytes], ja4: str | None
) -> None:
    h = hostile()
    with h.raw() as s:
        with contextlib.suppress(OSError):
            s.sendall(mangle(client_hello()))
        read_to_close(s)  # OpenSSL's alert, or the handshake timeout (1 s)
    h.connection(outcome="handshake-failed", reason=".+", ja4=ja4)
    h.settle()


def test_faults_fire_only_where_they_were_asked_for(hostile: Make) -> None:
    """Faults by SNI on the canary's server: 20 faulted connections of each
    kind, and the canary (SNI localhost) never sees one."""
    h = hostile(
        *("--fault", "reset-after-hello@reset.test", "--fault", "alert=internal_error@alert.test"),
        *("--fault", "close-after-hello@close.test"),
    )
    ctx = ssl.create_default_context(cafile=str(h.ca))
    ctx.check_hostname = False
    for sni in ("reset.test", "alert.test", "close.test"):
        for _ in range(20):
            raw = h.raw()
            with raw, contextlib.suppress(OSError):  # ssl.SSLError included
                ctx.wrap_socket(raw, server_hostname=sni)
    for fault in ("reset-after-hello", "alert=internal_error", "close-after-hello"):
        h.connection(count=20, fault=fault, outcome="fault")
    h.settle()
