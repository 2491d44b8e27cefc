"""The load generator's own event loop: non-blocking ``ssl.SSLSocket``s on epoll.

No asyncio in the client. Per message it costs a share of one ``epoll_wait``
(every ready connection is served by the same wake-up), one ``SSL_read``, one
``SSL_write`` and a few Python statements, so one client core can keep a fast
server busy: with asyncio streams the client cost several times that per
message and was the bottleneck of every pingpong measurement.

One :class:`Worker` runs in each client process. Its connections are small
state machines (connect, handshake, the scenario's exchange, the end of the
session) whose ``handler`` is the bound method for the current phase. Times are
``perf_counter_ns`` integers throughout.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import random
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tlsecho.bench.histogram import Histogram
from tlsecho.proxy_protocol import build_v1, build_v2

__all__ = ["Stats", "Worker", "WorkerSpec"]

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_RECV_SIZE = 256 * 1024
_READ_SIZE = 65536
_STREAM_WINDOW = 256 * 1024  # echo bytes in flight per stream connection
_CLOCK = time.perf_counter_ns
_SECOND = 1_000_000_000
_MS = 1_000_000
_RETRY_DELAY = 10_000_000  # after a failed connection, before the next one


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
        self.late = 0
        self.timeline: list[int] = []  # operations per second of the measured window
        self.seconds = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": self.latency.to_dict(),
            "handshake": self.handshake.to_dict(),
            "ops": self.ops,
            "bytes": self.bytes,
            "mismatched": self.mismatched,
            "errors": self.errors,
            "resumed": self.resumed,
            "late": self.late,
            "timeline": self.timeline,
            "seconds": self.seconds,
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
    timeout: float
    proxy_header: str | None
    seed: int


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


def _diff(got: bytes, want: bytes) -> int:
    """Wrong bytes: differing positions, plus any length difference."""
    if got == want:
        return 0
    return sum(a != b for a, b in zip(got, want, strict=False)) + abs(len(got) - len(want))


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"handshake: {exc.verify_message or 'certificate verify failed'}"
    if isinstance(exc, ssl.SSLEOFError):
        return "closed without close_notify"
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or type(exc).__name__).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__


class _Conn:
    """One connection slot. In the connect scenario the slot makes a new TLS
    connection for each message; otherwise it keeps one for the whole run."""

    __slots__ = (
        "dead",
        "due",
        "fd",
        "got",
        "handler",
        "inc",
        "mask",
        "msg",
        "out",
        "progress",
        "received",
        "sent",
        "session",
        "sock",
        "t_connect",
        "t_op",
        "tls",
        "w",
        "wbuf",
    )

    def __init__(self, w: Worker) -> None:
        self.w = w
        self.sock: Any = None
        self.tls: Any = None  # ssl.SSLObject over the two memory BIOs
        self.inc = self.out = ssl.MemoryBIO()
        self.fd = -1
        self.mask = 0
        self.handler: Callable[[int], None] = self._on_connected
        self.session: ssl.SSLSession | None = None
        self.msg = b""
        self.got = 0
        self.sent = 0
        self.received = 0
        self.wbuf = b""
        self.t_connect = 0
        self.t_op = 0
        self.due = 0  # open loop: the intended time of the next operation
        self.progress = 0
        self.dead = False

    # -- plumbing -------------------------------------------------------------
    def _watch(self, mask: int) -> None:
        if mask != self.mask:
            self.w.ep.modify(self.fd, mask)
            self.mask = mask

    def open(self) -> None:
        """A new TCP connection (non-blocking connect)."""
        w = self.w
        spec = w.spec
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.t_connect = self.progress = _CLOCK()
        if spec.rate is not None and not self.due:
            self.due = self.t_connect  # open loop: the slot's first connection is due now
        err = sock.connect_ex(spec.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._failed(OSError(err, os.strerror(err)))
            return
        self.sock = sock
        self.fd = sock.fileno()
        self.mask = _OUT
        self.handler = self._on_connected
        w.ep.register(self.fd, _OUT)
        w.conns[self.fd] = self

    def close(self) -> None:
        if self.fd >= 0:
            w = self.w
            w.conns.pop(self.fd, None)
            with contextlib.suppress(OSError):
                w.ep.unregister(self.fd)
            self.fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _failed(self, exc: BaseException | str) -> None:
        """Count the error; the slot starts over or stops. Errors count in the
        warm-up and the wind-down too, like wrong bytes: a server that fails
        there has failed all the same."""
        w = self.w
        w.stats.error(exc if isinstance(exc, str) else _error_kind(exc))
        self.close()
        if w.spec.scenario == "connect" and not w.stopping:
            w.call_at(_CLOCK() + _RETRY_DELAY, self)
        else:
            self.dead = True
            w.slot_done()

    # TLS runs over memory BIOs, not on the socket: one recv() brings every
    # record that has arrived (OpenSSL on a socket reads each record with two,
    # header then body) and one send() takes every record a write made.
    def _write(self, data: bytes) -> None:
        """Encrypt and send; what the socket cannot take now waits for EPOLLOUT."""
        self.tls.write(data)
        self._send_out()

    def _send_out(self) -> None:
        data = self.out.read()
        if not data:
            return
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0  # the next read reports what happened to the connection
        if n < len(data):
            self.wbuf = data[n:]
            self._watch(_IN | _OUT)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self.wbuf)
        except BlockingIOError:
            return
        except OSError:
            n = len(self.wbuf)
        self.wbuf = self.wbuf[n:]
        if not self.wbuf:
            self._watch(_IN)

    def _fill(self, events: int) -> bool:
        """Move what the socket holds into OpenSSL; False if the connection failed."""
        if self.wbuf and events & _OUT:
            self._flush()
        if not events & (_IN | _ERR):
            return True
        w = self.w
        try:
            n = self.sock.recv_into(w.buf)
        except BlockingIOError:
            return True
        except OSError as exc:
            self._failed(exc)
            return False
        if n:
            self.inc.write(w.view[:n])
        else:
            self.inc.write_eof()
        return True

    # -- connect and handshake --------------------------------------------------
    def _on_connected(self, events: int) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(OSError(err, os.strerror(err)))
            return
        w = self.w
        spec = w.spec
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            if spec.proxy_header:
                src, dst = self.sock.getsockname()[:2], self.sock.getpeername()[:2]
                build = build_v1 if spec.proxy_header == "v1" else build_v2
                self.sock.send(build(src, dst))  # a few bytes into an empty buffer
            self.tls = w.ctx.wrap_bio(
                self.inc,
                self.out,
                server_hostname=spec.server_hostname,
                session=self.session if spec.resume else None,
            )
        except (OSError, ValueError) as exc:
            self._failed(exc)
            return
        self._watch(_IN)
        self.handler = self._on_handshake
        self._on_handshake(0)

    def _on_handshake(self, events: int) -> None:
        if not self._fill(events):
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except OSError as exc:
            self._failed(exc)
            return
        self._send_out()
        w = self.w
        now = self.progress = _CLOCK()
        if w.measuring(now):
            w.stats.handshake.record(now - self.t_connect)
            if self.tls.session_reused:
                w.stats.resumed += 1
        if w.stopping:
            self._end_session()
        elif w.spec.scenario == "stream":
            self.handler = self._on_stream
            self._stream_fill()
        else:
            self.handler = self._on_echo
            if w.spec.scenario == "connect" or w.spec.rate is None:
                self.send_next(now)
            else:
                # Open loop: the first message at a random phase in the interval.
                self.due = now + int(random.random() * w.interval)
                w.call_at(self.due, self)

    # -- pingpong and connect: one message, its whole echo ------------------------
    def send_next(self, now: int) -> None:
        """Send the next message (closed loop: now; open loop: it is due)."""
        w = self.w
        if w.stopping or w.budget_spent():
            self._end_session()
            return
        w.started += 1
        self.msg = w.next_payload()
        self.got = 0
        self.progress = now
        if w.spec.scenario == "connect":
            # From the TCP connect, or in open loop from when it was due.
            self.t_op = self.t_connect if w.spec.rate is None else self.due
        elif w.spec.rate is None:
            self.t_op = now
        else:
            # Latency counts from when the message was due, not when it could
            # go: a stalled server cannot hide behind a late send.
            self.t_op = self.due
            if now - self.due > w.interval and w.measuring(now):
                w.stats.late += 1
        if w.spec.scenario == "connect" and w.spec.mode == "nul":
            self._write(self.msg + b"\x00")
        else:
            self._write(self.msg)

    def _on_echo(self, events: int) -> None:
        if not self._fill(events):
            return
        read = self.tls.read
        while True:
            try:
                data = read(_READ_SIZE)
            except ssl.SSLWantReadError:
                self._send_out()  # a TLS 1.3 KeyUpdate reply, say
                return
            except OSError as exc:
                self._failed(exc)
                return
            w = self.w
            if not data:
                if self.got or w.spec.scenario != "connect" or w.spec.mode != "nul":
                    self._failed("short echo")
                else:
                    self._failed("closed before echoing")
                return
            got = self.got
            n = len(data)
            msg = self.msg
            now = self.progress = _CLOCK()
            if data != msg[got : got + n]:
                w.stats.mismatched += _diff(data, msg[got : got + n])
            got += n
            self.got = got
            if got >= len(msg):
                self._completed(now)
                return

    def _completed(self, now: int) -> None:
        w = self.w
        if w.measuring(now):
            st = w.stats
            st.latency.record(now - self.t_op)
            st.ops += 1
            st.bytes += len(self.msg)
            w.tick(now)
        if w.spec.scenario == "connect":
            if w.spec.mode == "nul":
                # The server ends the session after the NUL: read to its EOF
                # (its close_notify may be in the BIO already).
                self.handler = self._on_end
                self._on_end(0)
            else:
                self._end_session()
            return
        if w.spec.rate is None:
            self.send_next(now)
        else:
            self.due += w.interval
            if self.due <= now:
                self.send_next(now)
            else:
                w.call_at(self.due, self)

    def on_timer(self, now: int) -> None:
        """A timer this connection asked for is due."""
        if self.fd < 0 and not self.dead:
            self.open()  # connect scenario: the slot's next connection
        elif self.handler == self._on_echo:
            self.send_next(now)

    # -- stream ------------------------------------------------------------------
    def _stream_fill(self) -> None:
        w = self.w
        chunk = w.chunk
        while not self.wbuf and self.sent - self.received < _STREAM_WINDOW and not w.stopping:
            self._write(chunk)
            self.sent += len(chunk)

    def _on_stream(self, events: int) -> None:
        if not self._fill(events):
            return
        w = self.w
        read = self.tls.read
        twice = w.chunk_twice
        n = len(w.chunk)
        while True:
            try:
                data = read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except OSError as exc:
                self._failed(exc)
                return
            if not data:
                self._failed("short echo")
                return
            now = self.progress = _CLOCK()
            start = self.received % n
            size = len(data)
            if size <= n:
                want = twice[start : start + size]
            else:
                want = (w.chunk * (size // n + 2))[start : start + size]
            if data != want:
                w.stats.mismatched += _diff(data, want)
            self.received += size
            if self.received > self.sent:
                w.stats.mismatched += self.received - self.sent  # more than we sent
            if w.measuring(now):
                w.stats.bytes += size
                done = (self.received // n) - ((self.received - size) // n)
                if done:
                    w.stats.ops += done
                    w.tick(now, done)
        if w.stopping:
            if self.received >= self.sent and not self.wbuf:
                self._end_session()
        else:
            self._stream_fill()

    # -- the end of a session ------------------------------------------------------
    def idle(self) -> bool:
        """Waiting for nothing from the server (open loop: for the next due time)."""
        return self.handler == self._on_echo and self.got >= len(self.msg)

    def stop(self) -> None:
        """The run is over: end the session once the exchange in flight is done
        (a message in flight ends it from _completed())."""
        if self.handler == self._on_stream:
            if self.received >= self.sent and not self.wbuf:
                self._end_session()
        elif self.idle():
            self._end_session()

    def _end_session(self) -> None:
        """nul: send the NUL and read to the server's EOF (nothing may come
        back); otherwise close_notify, and wait for the server's."""
        w = self.w
        if self.handler == self._on_end or self.handler == self._on_shutdown:
            return
        if w.spec.mode == "nul" and w.spec.scenario != "connect":
            self.handler = self._on_end
            self._write(b"\x00")
            return
        self.handler = self._on_shutdown
        self._on_shutdown(0)

    def _on_shutdown(self, events: int) -> None:
        if not self._fill(events):
            return
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except (ssl.SSLError, OSError):
            pass  # the server closed first, or sent data after the end: over
        self._send_out()
        self._session_over()

    def _on_end(self, events: int) -> None:
        if not self._fill(events):
            return
        while True:
            try:
                data = self.tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLEOFError:
                data = b""  # FIN without close_notify: still the end
            except OSError as exc:
                self._failed(exc)
                return
            if data:
                self.w.stats.mismatched += len(data)  # nothing may follow the echo
                continue
            self._session_over()
            return

    def _session_over(self) -> None:
        w = self.w
        if w.spec.resume and self.tls is not None:
            self.session = self.tls.session
        self.close()
        if w.spec.scenario == "connect" and not w.stopping and not w.budget_spent():
            if w.spec.rate is None:
                self.open()
            else:
                self.due += w.interval
                now = _CLOCK()
                if self.due <= now:
                    if now - self.due > w.interval and w.measuring(now):
                        w.stats.late += 1
                    self.open()
                else:
                    w.call_at(self.due, self)
        else:
            self.dead = True
            w.slot_done()


class Worker:
    """One client process's connections, driven by epoll until the run ends."""

    def __init__(
        self,
        spec: WorkerSpec,
        ctx: ssl.SSLContext,
        measure_from: int,
        stop_at: int,
        progress: Callable[[Stats], None] | None = None,
    ) -> None:
        self.spec = spec
        self.ctx = ctx
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.ep = select.epoll()
        self.conns: dict[int, _Conn] = {}
        self.timers: list[tuple[int, int, _Conn]] = []
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
        self.interval = int(_SECOND / conns_rate) if conns_rate else 0

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
        second = (now - self.measure_from) // _SECOND
        tl = self.stats.timeline
        while len(tl) <= second:
            tl.append(0)
        tl[second] += n

    def call_at(self, when: int, conn: _Conn) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (when, self._seq, conn))

    def slot_done(self) -> None:
        self.live -= 1

    # -- the loop --------------------------------------------------------------------
    def run(self) -> Stats:
        slots = [_Conn(self) for _ in range(self.spec.connections)]
        for c in slots:
            c.open()
        poll = self.ep.poll
        conns = self.conns
        timers = self.timers
        timeout_ns = int(self.spec.timeout * _SECOND)
        next_check = _CLOCK() + _SECOND // 4
        hard_stop = self.stop_at + timeout_ns
        while self.live > 0:
            now = _CLOCK()
            wait = min(next_check, timers[0][0] if timers else next_check) - now
            # epoll waits in whole milliseconds (rounded up): sleep to within
            # a millisecond of the next due time, then poll without waiting,
            # so open-loop sends are not late by the clock's granularity.
            wait = wait - _MS if wait > 2 * _MS else 0
            for fd, events in poll(wait / _SECOND):
                ready = conns.get(fd)
                if ready is not None:
                    ready.handler(events)
            now = _CLOCK()
            while timers and timers[0][0] <= now:
                _, _, c = heapq.heappop(timers)
                c.on_timer(now)
            if now >= next_check:
                next_check = now + _SECOND // 4
                self._housekeeping(now, timeout_ns, hard_stop, slots)
        self.ep.close()
        self.stats.seconds = (min(_CLOCK(), self.stop_at) - self.measure_from) / _SECOND
        return self.stats

    def _housekeeping(self, now: int, timeout_ns: int, hard_stop: int, slots: list[_Conn]) -> None:
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
            if now - c.progress > timeout_ns or (self.stopping and now > hard_stop):
                # No progress for --timeout seconds: a dropped byte or a stall.
                c._failed("timeout")
        if self._progress is not None:
            self._progress(self.stats)
