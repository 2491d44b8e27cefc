"""Backpressure through every record fault (issue 16).

Without a fault, a client that sends and never reads stops being read once
its echo backs up. Through a record fault the echo used to pile up in the
fault's queue instead: a client writing for 15 s without reading took the
server to 2.4 GB with ``bandwidth=10000``. Here one server holds every record
fault that lets a session run (by SNI), a client per fault writes for 10 s
and never reads, all at once, while a canary asking for another name is
echoed; the server's RSS must grow by less than 16 MB in all.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers import ServerProcess, start_server, stop_cleanly
from tests.hostile.helpers import rss_kib
from tlsecho.pki.certs import Pki

FLOOD_SECONDS = 10.0
FAULTS = {
    "slice.test": "slice=10:50",
    "latency.test": "latency=2000",
    "bandwidth.test": "bandwidth=10000",
    "slow.test": "slow-handshake=0.2",
    "truncate.test": "truncate",
    "corrupt.test": "corrupt",
    "garbage.test": "garbage-after-handshake",
}


@pytest.fixture(scope="module")
def faulty(ca_pki: Pki) -> Iterator[ServerProcess]:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--engine", "membio", "--mode", "raw", "--log-format", "json"),
        *(a for sni, f in FAULTS.items() for a in ("--fault", f"{f}@{sni}")),
    )
    yield srv
    stop_cleanly(srv)


def _context(ca_pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.check_hostname = False  # the certificate is for localhost; the SNI picks the fault
    return ctx


def echo_once(port: int, ctx: ssl.SSLContext, sni: str, data: bytes) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=sni) as tls:
        tls.sendall(data)
        return tls.recv(len(data))


def flood(port: int, ctx: ssl.SSLContext, sni: str, sent: dict[str, int]) -> None:
    """Write for FLOOD_SECONDS and never read; ``sent[sni]``: bytes the server took."""
    chunk = os.urandom(16384)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname=sni) as tls:
        tls.setblocking(False)
        total = 0
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            try:
                total += tls.send(chunk)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                select.select([], [tls], [], 0.1)
            except OSError:  # the fault ended the session: nothing held any more
                break
        sent[sni] = total


@pytest.mark.slow
def test_no_record_fault_lets_a_client_that_never_reads_grow_the_server(
    faulty: ServerProcess, ca_pki: Pki
) -> None:
    ctx = _context(ca_pki)
    assert echo_once(faulty.port, ctx, "warm.test", b"warm") == b"warm"
    time.sleep(0.5)
    before = rss_kib(faulty.proc.pid)
    sent: dict[str, int] = {}
    threads = [threading.Thread(target=flood, args=(faulty.port, ctx, sni, sent)) for sni in FAULTS]
    for t in threads:
        t.start()
    time.sleep(FLOOD_SECONDS / 2)
    peak_during = rss_kib(faulty.proc.pid)
    canary = echo_once(faulty.port, ctx, "canary.test", b"canary")
    assert canary == b"canary", "the canary was not served during the floods"
    for t in threads:
        t.join(FLOOD_SECONDS + 20)
    after = max(peak_during, rss_kib(faulty.proc.pid))
    assert set(sent) == set(FAULTS)
    grown = after - before
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB while clients did not read: {sent}"
    # The server stopped reading each of them: a few MB in socket buffers at most.
    flooded = {sni: n for sni, n in sent.items() if n > 64 * 1024 * 1024}
    assert not flooded, f"read on and on through the fault: {flooded}"
