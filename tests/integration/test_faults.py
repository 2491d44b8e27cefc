"""--fault: each handshake fault against real clients (Python's ssl,
openssl s_client, curl), by SNI on one port, while a client asking for
another name is served as usual; the log line and the metrics name it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import (
    TLSECHO,
    ServerProcess,
    scrape,
    send,
    start_server,
    stop_cleanly,
    tls_outcome,
)
from tlsecho.pki.certs import Pki

FAULTS = [
    "alert=protocol_version@old.test",
    "reset-after-hello@reset.test",
    "close-after-hello@close.test",
    "stall@stall.test",
    "reset-after=3@reset-after.test",
]


@pytest.fixture(scope="module")
def faulty(ca_pki: Pki) -> Iterator[ServerProcess]:
    args = [a for f in FAULTS for a in ("--fault", f)]
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--log-format", "json", "--handshake-timeout", "2", "--metrics", "127.0.0.1:0"),
        *args,
    )
    yield srv
    stop_cleanly(srv)


def python_client(port: int, ca_pki: Pki, sni: str, timeout: float = 10) -> bytes:
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.check_hostname = False  # the certificate is for localhost; the SNI picks the fault
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with raw, ctx.wrap_socket(raw, server_hostname=sni) as s:
        s.sendall(b"fine\x00")
        return s.recv(100)


def test_the_others_are_served(faulty: ServerProcess, ca_pki: Pki) -> None:
    assert python_client(faulty.port, ca_pki, "ok.test") == b"fine"
    rec = faulty.wait_for_record(sni="ok.test", outcome="terminated")[0]
    assert rec["fault"] is None


def test_alert(faulty: ServerProcess, ca_pki: Pki) -> None:
    with pytest.raises(ssl.SSLError) as info:
        python_client(faulty.port, ca_pki, "old.test")
    assert "PROTOCOL_VERSION" in str(info.value.reason)
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{faulty.port}", "-servername", "old.test"]
    p = subprocess.run(cmd, input=b"", capture_output=True, timeout=20, check=False)
    assert p.returncode != 0 and b"alert number 70" in p.stdout + p.stderr
    url = f"https://old.test:{faulty.port}/"
    c = subprocess.run(
        ["curl", "-s", "-S", "-m", "5", "--resolve", f"old.test:{faulty.port}:127.0.0.1", url],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert c.returncode == 35 and b"protocol version" in c.stderr.lower()
    recs = faulty.wait_for_record(count=3, fault="alert=protocol_version", outcome="fault")
    assert all(r["sni"] == "old.test" for r in recs)


def test_reset_and_close(faulty: ServerProcess, ca_pki: Pki) -> None:
    with pytest.raises(ConnectionResetError):
        python_client(faulty.port, ca_pki, "reset.test")
    with pytest.raises(ssl.SSLEOFError):
        python_client(faulty.port, ca_pki, "close.test")
    faulty.wait_for_record(fault="reset-after-hello", outcome="fault")
    faulty.wait_for_record(fault="close-after-hello", outcome="fault")


def test_stall(faulty: ServerProcess, ca_pki: Pki) -> None:
    """A client that waits: nothing comes back until the server gives up at
    --handshake-timeout (2 s)."""
    raw = socket.create_connection(("127.0.0.1", faulty.port), timeout=5)
    peer = f"127.0.0.1:{raw.getsockname()[1]}"
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    started = time.monotonic()
    with raw, pytest.raises((ssl.SSLError, ConnectionError)):
        ctx.wrap_socket(raw, server_hostname="stall.test")  # the server closes at 2 s
    assert time.monotonic() - started >= 1.9  # nothing came back before
    (rec,) = faulty.wait_for_record(peer=peer)
    assert rec["fault"] == "stall" and rec["outcome"] == "handshake-failed"
    assert rec["reason"] == "handshake timed out" and rec["duration_s"] >= 2


def test_a_stalled_connection_notices_the_client_leave(faulty: ServerProcess, ca_pki: Pki) -> None:
    """Issue 17: the client gave up at 1 s, the server noticed only at its
    handshake timeout. It reads on (and drops) while stalled: a FIN ends it."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        python_client(faulty.port, ca_pki, "stall.test", timeout=1)
    left = time.monotonic()
    assert left - started >= 1  # nothing came back for the whole second
    recs = faulty.wait_for_record(fault="stall", reason="the client closed during the stall")
    assert recs[-1]["outcome"] == "handshake-failed"
    assert recs[-1]["duration_s"] < 1.8  # well before --handshake-timeout (2 s)


def test_metrics_count_the_faults(faulty: ServerProcess, ca_pki: Pki) -> None:
    with pytest.raises(ConnectionResetError):
        python_client(faulty.port, ca_pki, "reset.test")
    faulty.wait_for_record(fault="reset-after-hello", outcome="fault")
    url = faulty.wait_for(r"metrics on http://")[0].split("metrics on ", 1)[1].strip()
    m = scrape(url)
    assert m[("tlsecho_faults_total", (("fault", "reset-after-hello"),))] >= 1


def test_probability(ca_pki: Pki) -> None:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--log-format", "json", "--fault", "close-after-hello~0.5"),
    )
    try:
        fired = 0
        for _ in range(40):
            try:
                assert python_client(srv.port, ca_pki, "localhost") == b"fine"
            except ssl.SSLEOFError:
                fired += 1
        assert 6 <= fired <= 34, fired  # half of 40, give or take chance (p < 1e-5 outside)
        srv.wait_for_record(count=fired, fault="close-after-hello")
    finally:
        stop_cleanly(srv)


def test_bad_fault_is_a_usage_error() -> None:
    p = subprocess.run(
        [*TLSECHO, "serve", "--port", "0", "--fault", "alert=nonsense"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert p.returncode == 2
    (line,) = p.stderr.decode().strip().splitlines()  # one line, no traceback
    assert "unknown alert 'nonsense'" in line


def test_echo_faults_with_real_clients(ca_pki: Pki) -> None:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--log-format", "json", "--fault", "limit=5@limit.test"),
        *("--fault", "stall-after=3@slow.test", "--idle-timeout", "2"),
    )
    try:
        # limit: 5 bytes, then close_notify; tlsecho send says the echo was short.
        # (--insecure: the certificate names localhost; the SNI picks the fault.)
        p = subprocess.run(
            [
                *(*TLSECHO, "send", "--port", str(srv.port), "--host", "127.0.0.1"),
                *("--insecure", "--servername", "limit.test", "hello world"),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert p.returncode == 1
        assert "server closed early after 5 of 11 bytes" in p.stderr.decode()
        rec = srv.wait_for_record(fault="limit=5")[0]
        assert rec["bytes_out"] == 5 and rec["reason"] == "echo cut short: 6 bytes not sent"
        # stall-after: 3 bytes, then silence (s_client waits; the server's idle
        # timeout ends it with close_notify).
        cmd = ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{srv.port}"]
        cmd += ["-servername", "slow.test", "-CAfile", str(ca_pki.ca.cert), "-ign_eof"]
        started = time.monotonic()
        s = subprocess.run(cmd, input=b"abcdef", capture_output=True, timeout=30, check=False)
        assert s.stdout == b"abc"
        assert time.monotonic() - started >= 2
        rec = srv.wait_for_record(fault="stall-after=3")[0]
        assert rec["outcome"] == "idle-timeout" and rec["bytes_out"] == 3
        # Another name: the whole echo.
        ok = python_client(srv.port, ca_pki, "ok.test")
        assert ok == b"fine"
    finally:
        stop_cleanly(srv)


def test_reset_after_on_any_engine(faulty: ServerProcess, ca_pki: Pki) -> None:
    """Three bytes echoed, then a reset (seen on the socket itself)."""
    got = tls_outcome(faulty.port, ca_pki.ca.cert, "reset-after.test", b"abcdef")
    assert got == ("reset", b"abc")
    assert tls_outcome(faulty.port, ca_pki.ca.cert, "ok.test", b"abcdef\0") == (
        "close_notify",
        b"abcdef",
    )
    faulty.wait_for_record(fault="reset-after=3", outcome="fault")


def test_send_says_which_alert_the_server_sent(faulty: ServerProcess, ca_pki: Pki) -> None:
    """Issue 17: against --fault alert=protocol_version, send said "no TLS
    version in common", which was not so: it says what the server sent."""
    p = send(faulty.port, "--servername", "old.test", "--cafile", str(ca_pki.ca.cert), "hi")
    assert p.returncode != 0
    assert "the server sent a protocol_version alert" in p.stderr.decode(), p.stderr
