"""The ``http`` scenario: keep-alive requests against ``serve --mode http``
(or any HTTPS server), one at a time per connection, latency per request.

HTTP/1.1 unless ALPN chose ``h2`` (``--alpn h2``), then HTTP/2 through h2,
a new stream per request. Every response is checked: status 200, and a body
equal to the expected one (``GET /bytes/SIZE?seed=1`` by default, whose bytes
are known: Python's ``random.Random(1).randbytes(SIZE)``, as the server makes
them; with ``--path``, the first response's body is the reference).
"""

from __future__ import annotations

import ssl
from typing import Any

import h2.config
import h2.connection
import h2.events

from tlsecho.bench.engine import CLOCK, Worker, default_path, diff, expected_body
from tlsecho.bench.scenarios import Pingpong
from tlsecho.bench.tlsbio import READ_SIZE

__all__ = ["Http1", "Http2", "default_path", "expected_body"]  # the last two: engine's

_MAX_HEAD = 64 * 1024


class _Http(Pingpong):
    """What both versions share: the check of one response."""

    __slots__ = ()

    def _ends_with_nul(self) -> bool:
        return False  # HTTP ends with close_notify (HTTP/2: after GOAWAY)

    def _eof_reason(self) -> str:
        return "server closed the connection"

    def _check(self, status: int, body: bytes, now: int) -> None:
        w: Any = self.w
        if status != 200:
            self._failed(f"HTTP status {status}")
            return
        want = w.http_expect
        if want is None:
            w.http_expect = body  # --path: the first answer is the reference
        elif body != want:
            w.stats.mismatched += diff(body, want)
        self.msg = body  # what _completed counts as verified
        self.got = len(body)
        self._completed(now)


class Http1(_Http):
    """HTTP/1.1 keep-alive: a request, its whole response, the next request;
    a new connection after a ``Connection: close`` (hypercorn sends one
    after 1000 requests), as HTTP clients do."""

    __slots__ = ("body_at", "closing", "need", "rbuf", "status")

    def __init__(self, w: Worker) -> None:
        super().__init__(w)
        self.rbuf = bytearray()
        self.need = -1  # the response's total size, once its head is in
        self.body_at = 0
        self.status = 0
        self.closing = False

    def _after_echo(self, now: int) -> None:
        if self.closing:
            self._end_session()  # close_notify; _next_connection opens another
        else:
            super()._after_echo(now)

    def _next_connection(self) -> bool:
        w = self.w
        if w.stopping or w.budget_spent():
            return False
        self.closing = False
        self.open()
        return True

    def _wire(self, msg: bytes) -> bytes:
        w: Any = self.w
        self.rbuf.clear()
        self.need = -1
        return bytes(w.http_request)

    def _on_echo(self, events: int) -> None:
        if not self._fill(events):
            return
        read = self.tls.read
        buf = self.rbuf
        while True:
            try:
                data = read(READ_SIZE)
            except ssl.SSLWantReadError:
                self._send_out()
                return
            except OSError as exc:
                self._failed(exc)
                return
            if not data:
                self._failed(self._eof_reason())
                return
            buf += data
            if self.need < 0 and not self._head():
                return
            if len(buf) >= self.need:
                now = self.progress = CLOCK()
                if len(buf) > self.need:
                    self.w.stats.mismatched += len(buf) - self.need  # more than one answer
                self._check(self.status, bytes(buf[self.body_at : self.need]), now)
                return

    def _head(self) -> bool:
        """Parse the response head once it is in; False: wait (or failed)."""
        buf = self.rbuf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                self._failed("response head too long")
            return False
        head = bytes(buf[:end]).lower()
        try:
            self.status = int(head[9:12])
            at = head.index(b"\r\ncontent-length:") + 17
            nl = head.find(b"\r\n", at)
            length = int(head[at : nl if nl >= 0 else len(head)])
        except ValueError:
            self._failed("response without a status or content-length")
            return False
        self.body_at = end + 4
        self.need = end + 4 + length
        self.closing = b"\r\nconnection: close" in head
        return True


class Http2(_Http):
    """HTTP/2: one stream per request, one request at a time."""

    __slots__ = ("body", "conn", "done", "sid", "status")

    def __init__(self, w: Worker) -> None:
        super().__init__(w)
        self.conn: Any = None
        self.body = bytearray()
        self.sid = 0
        self.status = 0
        self.done = False

    def _exchange(self, now: int) -> None:
        if self.tls.selected_alpn_protocol() != "h2":
            self._failed("the server did not choose h2 (ALPN)")
            return
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        super()._exchange(now)

    def _wire(self, msg: bytes) -> bytes:
        w: Any = self.w
        conn = self.conn
        self.sid = conn.get_next_available_stream_id()
        conn.send_headers(self.sid, w.http_headers, end_stream=True)
        self.body.clear()
        self.status = 0
        self.done = False
        return bytes(conn.data_to_send())

    def _on_echo(self, events: int) -> None:
        if not self._fill(events):
            return
        read = self.tls.read
        conn = self.conn
        while True:
            try:
                data = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except OSError as exc:
                self._failed(exc)
                return
            if not data:
                self._failed(self._eof_reason())
                return
            self.progress = CLOCK()
            try:
                events_in = conn.receive_data(data)
            except Exception as exc:  # h2's ProtocolError family
                self._failed(f"HTTP/2: {exc}")
                return
            for ev in events_in:
                self._event(ev)
        out = conn.data_to_send()
        if out:
            self.tls.write(out)
        self._send_out()
        if self.done:
            self._check(self.status, bytes(self.body), CLOCK())

    def _event(self, ev: Any) -> None:
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == self.sid:
            self.status = int(dict(ev.headers or [])[b":status"])
        elif isinstance(ev, h2.events.DataReceived):
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id == self.sid:
                self.body += ev.data or b""
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
            self.done = True
        elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
            self.status = self.status or 599
            self.done = True
