"""The load generator's own event loop: non-blocking sockets on epoll, TLS
over memory BIOs (:mod:`tlsecho.bench.tlsbio`).

No asyncio in the client. Per message it costs a share of one ``epoll_wait``
(every ready connection is served by the same wake-up), one ``recv``, one
``send`` and a few Python statements, so one client core can keep a fast
server busy: with asyncio streams the client cost several times that per
message and was the bottleneck of every pingpong measurement.

One :class:`Worker` runs in each client process. Its connection slots are
small state machines of the scenario's class (:mod:`tlsecho.bench.scenarios`)
whose ``handler`` is the bound method for the current phase. Times are
``perf_counter_ns`` integers throughout.
"""

from __future__ import annotations

import heapq
import random
import select
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tlsecho.bench.histogram import Histogram

__all__ = [
    "CLOCK",
    "SECOND",
    "Slot",
    "Stats",
    "Worker",
    "WorkerSpec",
    "default_path",
    "diff",
    "expected_body",
]

_RECV_SIZE = 256 * 1024
#: The phases of a connection that ``--scenario connect`` times.
PHASES = ("tcp_connect", "tls_handshake", "first_byte")
CLOCK = time.perf_counter_ns
SECOND = 1_000_000_000
_MS = 1_000_000


class Stats:
    """One process's measurements: latency, operations and bytes of the measured
    window only; errors and wrong bytes whenever they happen."""

    def __init__(self) -> None:
        self.latency = Histogram()
        self.handshake = Histogram()
        self.ops = 0
        self.bytes = 0
        self.mismatched = 0
        self.errors: dict[str, int] = {}
        self.resumed = 0
        # Per-phase times by "TLSv1.3 full" / "TLSv1.3 resumed": TCP connect,
        # TLS handshake, first echo byte (measured window only).
        self.phases: dict[str, dict[str, Histogram]] = {}
        self.connections_made = 0
        self.late = 0
        self.timeline: list[int] = []  # operations per second of the measured window
        self.seconds = 0.0
        self.interrupted = False

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def phase(self, key: str, name: str, ns: int) -> None:
        """One phase's time (``tcp_connect``, ``tls_handshake``, ``first_byte``)
        for a handshake of kind ``key``."""
        kinds = self.phases.get(key)
        if kinds is None:
            kinds = self.phases[key] = {n: Histogram() for n in PHASES}
        kinds[name].record(ns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": self.latency.to_dict(),
            "handshake": self.handshake.to_dict(),
            "ops": self.ops,
            "bytes": self.bytes,
            "mismatched": self.mismatched,
            "errors": self.errors,
            "resumed": self.resumed,
            "phases": {k: {n: h.to_dict() for n, h in v.items()} for k, v in self.phases.items()},
            "connections_made": self.connections_made,
            "late": self.late,
            "timeline": self.timeline,
            "seconds": self.seconds,
            "interrupted": self.interrupted,
        }


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """What a worker needs, picklable: built by the runner from BenchConfig."""

    scenario: str
    mode: str
    address: tuple[Any, ...]
    family: int
    server_hostname: str | None
    connections: int
    size: int
    rate: float | None
    count: int | None
    resume: bool
    resume_ratio: float
    """The share of handshakes that offer the previous session (1.0 with
    ``--resume``; 0.0 without)."""
    timeout: float
    proxy_header: str | None
    seed: int
    http_path: str = ""
    """Scenario http: the request's path."""
    http_host: str = "localhost"
    """Scenario http: the Host header (HTTP/2's :authority)."""
    alpn: str = ""
    """The first ALPN protocol offered (scenario http: ``h2`` speaks HTTP/2)."""


def _payloads(rng: random.Random, size: int, mode: str, n: int) -> list[bytes]:
    """Random messages the server's framing echoes whole and does not end on:
    no NUL (nul mode ends the session on it), no newline inside a line."""
    alphabet = bytes(b for b in range(1, 256) if b != 10)
    out = []
    for _ in range(n):
        body = bytes(rng.choices(alphabet, k=size))
        if mode == "line":
            body = body[:-1] + b"\n"
        out.append(body)
    return out


def default_path(size: int) -> str:
    """The request path when ``--path`` is not given."""
    return f"/bytes/{size}?seed=1"


def expected_body(path: str, size: int) -> bytes | None:
    """The body a correct server sends for ``path`` (None: learn it from the
    first response)."""
    if path == default_path(size):
        return random.Random(1).randbytes(size)
    return None


def diff(got: bytes, want: bytes) -> int:
    """Wrong bytes: differing positions, plus any length difference."""
    if got == want:
        return 0
    return sum(a != b for a, b in zip(got, want, strict=False)) + abs(len(got) - len(want))


class Slot(Protocol):
    """What the worker's loop needs of a connection slot (a scenario's class)."""

    fd: int
    dead: bool
    progress: int
    handler: Callable[[int], None]

    def open(self) -> None: ...
    def on_timer(self, now: int) -> None: ...
    def idle(self) -> bool: ...
    def stop(self) -> None: ...
    def fail(self, reason: str) -> None: ...


class Worker:
    """One client process's connections, driven by epoll until the run ends."""

    def __init__(
        self,
        spec: WorkerSpec,
        ctx: ssl.SSLContext,
        measure_from: int,
        stop_at: int,
        make_slot: Callable[[Worker], Slot],
        progress: Callable[[Stats], None] | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        self.spec = spec
        self._make_slot = make_slot
        # Asked at each housekeeping round: stop now (Ctrl-C in the parent).
        self._interrupted = interrupted
        self.ctx = ctx
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.ep = select.epoll()
        self.conns: dict[int, Slot] = {}
        self.timers: list[tuple[int, int, Slot]] = []
        self._seq = 0
        self.stats = Stats()
        self.stopping = False
        self.started = 0
        self.live = spec.connections
        self._progress = progress
        rng = random.Random(spec.seed)
        self.payloads = _payloads(rng, spec.size, spec.mode, 64)
        self._next = 0
        self.buf = bytearray(_RECV_SIZE)  # every connection's recv() lands here
        self.view = memoryview(self.buf)
        self.chunk = self.payloads[0]
        self.chunk_twice = self.chunk * 2
        conns_rate = spec.rate / spec.connections if spec.rate else 0.0
        self.interval = int(SECOND / conns_rate) if conns_rate else 0
        # Scenario http (tlsecho.bench.http): the request, both ways, and the
        # body every response must have (None: the first one's).
        self.http_request = (
            f"GET {spec.http_path} HTTP/1.1\r\nHost: {spec.http_host}\r\n\r\n".encode()
        )
        self.http_headers = [
            (b":method", b"GET"),
            (b":path", spec.http_path.encode()),
            (b":scheme", b"https"),
            (b":authority", spec.http_host.encode()),
        ]
        self.http_expect: bytes | None = expected_body(spec.http_path, spec.size)

    # -- helpers for connections ---------------------------------------------------
    def measuring(self, now: int) -> bool:
        return self.measure_from <= now < self.stop_at

    def next_payload(self) -> bytes:
        self._next = (self._next + 1) & 63
        return self.payloads[self._next]

    def budget_spent(self) -> bool:
        return self.spec.count is not None and self.started >= self.spec.count

    def tick(self, now: int, n: int = 1) -> None:
        """Count ``n`` operations completed now in the timeline."""
        second = (now - self.measure_from) // SECOND
        tl = self.stats.timeline
        while len(tl) <= second:
            tl.append(0)
        tl[second] += n

    def call_at(self, when: int, conn: Slot) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (when, self._seq, conn))

    def slot_done(self) -> None:
        self.live -= 1

    # -- the loop --------------------------------------------------------------------
    def run(self) -> Stats:
        slots = [self._make_slot(self) for _ in range(self.spec.connections)]
        for c in slots:
            c.open()
        poll = self.ep.poll
        conns = self.conns
        timers = self.timers
        timeout_ns = int(self.spec.timeout * SECOND)
        next_check = CLOCK() + SECOND // 4
        while self.live > 0:
            now = CLOCK()
            wait = min(next_check, timers[0][0] if timers else next_check) - now
            # epoll waits in whole milliseconds (rounded up): sleep to within
            # a millisecond of the next due time, then poll without waiting,
            # so open-loop sends are not late by the clock's granularity.
            wait = wait - _MS if wait > 2 * _MS else 0
            for fd, events in poll(wait / SECOND):
                ready = conns.get(fd)
                if ready is not None:
                    ready.handler(events)
            now = CLOCK()
            while timers and timers[0][0] <= now:
                _, _, c = heapq.heappop(timers)
                c.on_timer(now)
            if now >= next_check:
                next_check = now + SECOND // 4
                self._housekeeping(now, timeout_ns, slots)
        self.ep.close()
        measured = min(CLOCK(), self.stop_at) - self.measure_from
        self.stats.seconds = max(0, measured) / SECOND
        return self.stats

    def _housekeeping(self, now: int, timeout_ns: int, slots: list[Slot]) -> None:
        if not self.stopping and self._interrupted is not None and self._interrupted():
            self.stats.interrupted = True
            self.stop_at = min(self.stop_at, now)  # the measured window ends here
        if not self.stopping and (now >= self.stop_at or self.budget_spent()):
            self.stopping = True
            self.timers.clear()
            for c in slots:
                if c.dead:
                    continue
                if c.fd < 0:
                    c.dead = True  # connect scenario, between connections
                    self.slot_done()
                else:
                    c.stop()
        for c in list(self.conns.values()):
            if c.idle() and not self.stopping:
                continue
            if now - c.progress > timeout_ns or (self.stopping and now > self.stop_at + timeout_ns):
                # No progress for --timeout seconds: a dropped byte or a stall.
                c.fail("timeout")
        if self._progress is not None:
            self._progress(self.stats)
