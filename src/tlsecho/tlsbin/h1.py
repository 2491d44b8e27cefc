"""HTTP/1.1 for mode ``http``, through h11 (sans-IO): keep-alive, pipelining
(answers in order, a delayed one holds back those behind it), caps on the
head, the body, the time a request may take and the work one read may cause.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import h11

from tlsecho.tlsbin.routes import Health, HttpLimits, Request, Response, error_response, respond

__all__ = ["OUTPUT_BUDGET", "H1Session"]

#: Response bytes made per call; the rest of the pipelined requests wait
#: for the next call (:meth:`H1Session.handle_timer`), so that one small
#: read cannot make the server build gigabytes at once.
OUTPUT_BUDGET = 256 * 1024
_MAX_QUEUED = 64
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


_EVENTS: dict[tuple[int, tuple[tuple[bytes, bytes], ...]], h11.Response] = {}
_MAX_EVENTS = 256


def _response_event(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    """h11's Response event, made once per status and headers (h11 checks
    and normalises every header each time one is made: a sixth of a small
    answer's cost); the cache stops growing at 256 (``/bytes/N`` varies)."""
    key = (status, tuple(headers))
    event = _EVENTS.get(key)
    if event is None:
        event = h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        if len(_EVENTS) < _MAX_EVENTS:
            _EVENTS[key] = event
    return event


class H1Session:
    """One HTTP/1.1 connection.

    Args:
        ctx: what the server knows of the connection (the JSON's
            ``connection``, ``tls``, ``client_hello``, ``server``).
        health: the server's ``/health`` state.
        limits: the caps.
        clock: the time, in seconds (the engine's loop time; tests inject one).
    """

    def __init__(
        self,
        ctx: Mapping[str, Any],
        health: Health,
        limits: HttpLimits,
        clock: Callable[[], float],
    ) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header)
        self._ctx, self._health, self._limits, self._clock = ctx, health, limits, clock
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._started: float | None = None  # the first byte of an unfinished request
        self._queue: deque[tuple[float, bytes]] = deque()  # (due, bytes), in order
        self._closing = False  # send what is queued, then end the connection
        self._eof = False
        self._stalled = False  # the last pump stopped at the budget, not for data
        self.finished = False
        self.terminated = False
        self.error: str | None = None
        """Why the connection ended early (a malformed request…), or None."""
        self.answered: list[tuple[Request | None, int]] = []
        """Requests answered since the engine last emptied it, with the status."""

    @property
    def peer_closed(self) -> bool:
        """The peer ended the stream."""
        return self._eof

    @property
    def backlog(self) -> bool:
        """Received requests not yet answered (the output budget ran out)."""
        return self._stalled and not self._closing

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes (``b""``: the peer closed); the response bytes due now."""
        if self.finished:
            return b""
        if not data:
            self._eof = True
        elif self._started is None and self._head is None:
            self._started = self._clock()
        self._conn.receive_data(data)
        self._pump()
        return self._ready(self._clock())

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next wanted: a held-back response, a
        request's deadline, or now (a backlog)."""
        if self.finished:
            return None
        times = []
        if self._queue:
            times.append(self._queue[0][0])
        if self._started is not None and not self._closing:
            times.append(self._started + self._limits.request_timeout)
        if self._stalled and not self._closing and len(self._queue) < _MAX_QUEUED:
            times.append(self._clock())
        return min(times) if times else None

    def handle_timer(self, now: float) -> bytes:
        """What is due at ``now``: held responses, a 408, the next of a backlog."""
        if self.finished:
            return b""
        started = self._started
        if (
            started is not None
            and not self._closing
            and now >= started + self._limits.request_timeout
        ):
            self._fail(408, "request timed out")
        self._pump()
        return self._ready(now)

    # -- internals ------------------------------------------------------------
    def _ready(self, now: float) -> bytes:
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft()[1])
        if not self._queue and (self._closing or self._eof):
            self.finished = True
        return b"".join(out)

    def _pump(self) -> None:
        made = 0
        conn = self._conn
        self._stalled = True
        while not self._closing and made < OUTPUT_BUDGET and len(self._queue) < _MAX_QUEUED:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # h11 shows the offending bytes as bytearray(b'...'): show b'...'.
                why = re.sub(r"bytearray\((b'.*?')\)", r"\1", str(exc))
                self._fail(exc.error_status_hint, f"bad request: {why}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                self._stalled = False
                if conn.they_are_waiting_for_100_continue:
                    self._queue_bytes(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                break
            if isinstance(event, h11.Request):
                # h11 caps a head that arrives in pieces; one that came whole is ours to cap.
                size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self._limits.max_header:
                    self._fail(431, f"request head over {self._limits.max_header} bytes")
                    return
                self._head = event
                self._body.clear()
                if self._started is None:
                    self._started = self._clock()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._limits.max_body:
                    self._fail(413, f"request body over {self._limits.max_body} bytes")
                    return
            elif isinstance(event, h11.EndOfMessage):
                made += self._answer()
            elif isinstance(event, h11.ConnectionClosed):
                self._eof = True
                self._stalled = False
                break
        if len(conn.trailing_data[0]) > self._limits.max_header + self._limits.max_body:
            self._fail(503, "too many pipelined requests")

    def _answer(self) -> int:
        head = self._head
        assert head is not None
        req = Request(
            method=head.method.decode("ascii", "replace"),
            target=head.target.decode("utf-8", "backslashreplace"),
            headers=tuple(
                (k.decode("ascii", "replace"), v.decode("utf-8", "backslashreplace"))
                for k, v in head.headers.raw_items()
            ),
            body=bytes(self._body),
            http_version=head.http_version.decode("ascii", "replace"),
        )
        self._head, self._started = None, None
        self._body.clear()
        resp = respond(req, self._ctx, self._health, self._limits)
        n = self._send(resp, req)
        if self._conn.our_state is h11.MUST_CLOSE:
            self._closing = True
            self.terminated = True
        elif not self._closing:
            self._conn.start_next_cycle()
        return n

    def _send(self, resp: Response, req: Request | None) -> int:
        conn = self._conn
        headers = [(b"server", b"tlsecho"), *resp.headers]
        if resp.close:
            headers.append((b"connection", b"close"))
        parts = [conn.send(_response_event(resp.status, headers)) or b""]
        if resp.chunks is not None:
            parts.extend(conn.send(h11.Data(data=c)) or b"" for c in resp.chunks if c)
        elif resp.body and (req is None or req.method != "HEAD"):
            parts.append(conn.send(h11.Data(data=resp.body)) or b"")
        parts.append(conn.send(h11.EndOfMessage()) or b"")
        data = b"".join(parts)
        delay = resp.delay
        self._queue_bytes(data, delay)
        self.answered.append((req, resp.status))
        return len(data)

    def _queue_bytes(self, data: bytes, delay: float = 0.0) -> None:
        due = self._clock() + delay
        if self._queue:
            due = max(due, self._queue[-1][0])  # in order, always
        self._queue.append((due, data))

    def _fail(self, status: int, message: str) -> None:
        """Answer ``status`` if a response can still go out, then close."""
        self.error = message
        self._closing = True
        self._started = None
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # h11 refusing (it should not) only means: close without it.
            with contextlib.suppress(h11.LocalProtocolError):
                self._send(error_response(status, message), None)
        else:
            self.answered.append((None, status))
