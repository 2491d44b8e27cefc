"""HTTP/2 for mode ``http`` when ALPN chose ``h2``, through h2 (sans-IO):
many streams, flow control honoured, each response held back on its own.

Flood protections: h2's own (at most 64 CONTINUATION frames per header
block, no stream beyond ``SETTINGS_MAX_CONCURRENT_STREAMS``) and ours: a
header list over ``max_header`` is a 431 on its stream; PING, SETTINGS,
RST_STREAM, PRIORITY and empty DATA frames draw on a budget that answered
requests refill, and a peer past it gets GOAWAY ``ENHANCE_YOUR_CALM``
(the "rapid reset" and control-frame floods); responses are made only while
less than :data:`~tlsecho.tlsbin.h1.OUTPUT_BUDGET` bytes wait to be sent.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from tlsecho.tlsbin.h1 import OUTPUT_BUDGET
from tlsecho.tlsbin.routes import Health, HttpLimits, Request, Response, error_response, respond

__all__ = ["CONTROL_ALLOWANCE", "MAX_STREAMS", "H2Session"]

MAX_STREAMS = 100
#: Control frames a peer may send beyond ``CONTROL_PER_REQUEST`` per request answered.
CONTROL_ALLOWANCE = 1000
CONTROL_PER_REQUEST = 4
_CONTROL_EVENTS = (
    h2.events.PingReceived,
    h2.events.RemoteSettingsChanged,
    h2.events.StreamReset,
    h2.events.PriorityUpdated,
    h2.events.SettingsAcknowledged,
)


#: Closed streams whose state h2 remembers, per connection (its default is
#: 65 536). It remembers them to tell a frame on a stream it closed itself
#: (ignored) from one on a stream the peer closed (an error); with 65 536
#: a long-lived connection kept ~100 bytes per request answered, 6.5 MB
#: each (issue 16: +61 MB over 8 soaked connections). As many as may be
#: open at once is enough for the late frames of a correct client; a frame
#: on a stream forgotten here is answered as on any closed stream (RFC 9113
#: 5.1: RST_STREAM STREAM_CLOSED).
MAX_CLOSED_STREAMS = MAX_STREAMS


class _H2Connection(h2.connection.H2Connection):
    MAX_CLOSED_STREAMS = MAX_CLOSED_STREAMS


class _Stream:
    __slots__ = ("body", "done", "headers", "started")

    def __init__(self, headers: tuple[tuple[str, str], ...], started: float) -> None:
        self.headers = headers
        self.body = bytearray()
        self.started = started
        self.done = False  # answered (early, with an error) before its end


class H2Session:
    """One HTTP/2 connection (the same arguments as :class:`~tlsecho.tlsbin.h1.H1Session`)."""

    def __init__(
        self,
        ctx: Mapping[str, Any],
        health: Health,
        limits: HttpLimits,
        clock: Callable[[], float],
    ) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._conn = _H2Connection(config)
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header,
            },
        )
        self._ctx, self._health, self._limits, self._clock = ctx, health, limits, clock
        self._streams: dict[int, _Stream] = {}  # receiving
        self._ready: deque[Request] = deque()  # complete, not answered yet
        self._held: list[tuple[float, int, Response, Request]] = []  # delayed
        self._sending: dict[int, memoryview] = {}  # body bytes waiting for window
        self._control = 0
        self._answered_count = 0
        self._closing = False
        self._eof = False
        self.finished = False
        self.terminated = False
        self.error: str | None = None
        self.answered: list[tuple[Request | None, int]] = []

    def start(self) -> bytes:
        """Our connection preface (SETTINGS)."""
        self._conn.initiate_connection()
        return self._conn.data_to_send()

    @property
    def peer_closed(self) -> bool:
        """The peer ended the stream."""
        return self._eof

    @property
    def backlog(self) -> bool:
        """Complete requests not answered yet (the output budget ran out)."""
        return bool(self._ready) and not self._closing

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes (``b""``: the peer closed); the frames to send now."""
        if self.finished:
            return b""
        if not data:
            self._eof = self._closing = self.finished = True
            return self._conn.data_to_send()
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self._goaway(code, f"HTTP/2 protocol error: {exc}")
            return self._conn.data_to_send()
        for event in events:
            self._event(event)
            if self._closing:
                break
        return self._flush(self._clock())

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next wanted."""
        if self.finished:
            return None
        times = [due for due, *_ in self._held]
        times.extend(s.started + self._limits.request_timeout for s in self._streams.values())
        if self.backlog and self._pending() < OUTPUT_BUDGET:
            times.append(self._clock())
        return min(times) if times else None

    def handle_timer(self, now: float) -> bytes:
        """Held responses that are due, 408s, the next of a backlog."""
        if self.finished:
            return b""
        limit = self._limits.request_timeout
        for sid, stream in list(self._streams.items()):
            if now >= stream.started + limit:
                del self._streams[sid]
                self._early(sid, 408, "request timed out")
        return self._flush(now)

    # -- events ---------------------------------------------------------------
    def _event(self, event: h2.events.Event) -> None:
        conn = self._conn
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if not event.data:
                self._count_control()
            if stream is not None and not stream.done:
                stream.body += event.data
                if len(stream.body) > self._limits.max_body:
                    stream.done = True
                    self._early(event.stream_id, 413, "request body too large")
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None and not stream.done:
                self._ready.append(self._to_request(event.stream_id, stream))
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id)
            self._count_control()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._closing = self.finished = self.terminated = True
        elif isinstance(event, _CONTROL_EVENTS):
            self._count_control()

    def _request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        assert sid is not None
        raw = event.headers or []
        size = sum(len(k) + len(v) + 32 for k, v in raw)
        headers = tuple(
            (bytes(k).decode("ascii", "replace"), bytes(v).decode("utf-8", "backslashreplace"))
            for k, v in raw
        )
        stream = _Stream(headers, self._clock())
        if size > self._limits.max_header:
            stream.done = True
            self._early(sid, 431, f"header list over {self._limits.max_header} bytes")
        if event.stream_ended is None:
            self._streams[sid] = stream
        elif not stream.done:
            self._ready.append(self._to_request(sid, stream))

    def _to_request(self, sid: int, stream: _Stream) -> Request:
        pseudo = dict(stream.headers)
        return Request(
            method=pseudo.get(":method", "GET"),
            target=pseudo.get(":path", "/"),
            headers=stream.headers,
            body=bytes(stream.body),
            http_version="2",
            stream_id=sid,
        )

    def _count_control(self) -> None:
        self._control += 1
        allowed = CONTROL_ALLOWANCE + CONTROL_PER_REQUEST * self._answered_count
        if self._control > allowed and not self._closing:
            self._goaway(
                h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                "HTTP/2 flood: too many control frames (PING, SETTINGS, RST_STREAM…)",
            )

    # -- responses --------------------------------------------------------------
    def _early(self, sid: int, status: int, message: str) -> None:
        """Answer a stream before its request is complete, then reset it."""
        resp = error_response(status, message)
        resp.close = False
        self._start_response(sid, resp, None)
        self._flush_stream(sid)
        if sid not in self._sending:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self._conn.reset_stream(sid, h2.errors.ErrorCodes.NO_ERROR)

    def _forget(self, sid: int) -> None:
        self._streams.pop(sid, None)
        self._sending.pop(sid, None)
        self._held = [h for h in self._held if h[1] != sid]
        self._ready = deque(r for r in self._ready if r.stream_id != sid)

    def _pending(self) -> int:
        return sum(len(v) for v in self._sending.values())

    def _flush(self, now: float) -> bytes:
        """Answer what can be answered, send what flow control lets through."""
        if not self._closing:
            due = [h for h in self._held if h[0] <= now]
            if due:
                self._held = [h for h in self._held if h[0] > now]
                for _, sid, resp, req in due:
                    self._start_response(sid, resp, req)
            while self._ready and self._pending() < OUTPUT_BUDGET:
                req = self._ready.popleft()
                resp = respond(req, self._ctx, self._health, self._limits)
                assert req.stream_id is not None
                if resp.delay > 0:
                    self._held.append((now + resp.delay, req.stream_id, resp, req))
                else:
                    self._start_response(req.stream_id, resp, req)
            for sid in list(self._sending):
                self._flush_stream(sid)
        return self._conn.data_to_send()

    def _start_response(self, sid: int, resp: Response, req: Request | None) -> None:
        body = b"".join(resp.chunks) if resp.chunks is not None else resp.body
        if req is not None and req.method == "HEAD":
            body = b""
        headers = [(b":status", str(resp.status).encode()), (b"server", b"tlsecho")]
        headers.extend(resp.headers)
        self._answered_count += 1
        self.answered.append((req, resp.status))
        try:
            self._conn.send_headers(sid, headers, end_stream=not body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return  # the peer reset it meanwhile
        if body:
            self._sending[sid] = memoryview(body)

    def _flush_stream(self, sid: int) -> None:
        conn = self._conn
        view = self._sending.get(sid)
        if view is None:
            return
        try:
            while view:
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk, view = view[:window], view[window:]
                conn.send_data(sid, chunk.tobytes(), end_stream=not view)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            view = memoryview(b"")
        if view:
            self._sending[sid] = view
        else:
            del self._sending[sid]

    def _goaway(self, code: int, message: str) -> None:
        """GOAWAY (sent with the next bytes out), and the end."""
        self.error = message
        self._closing = self.finished = True
        self._conn.close_connection(error_code=code)
