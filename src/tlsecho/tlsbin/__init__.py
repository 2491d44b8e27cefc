"""tlsbin: mode ``http``, an HTTPS echo for proxies, load balancers, curl
and browsers.

:class:`HttpFraming` sits where the echo framings sit (the same
``receive_data()`` contract, sans-IO): once the handshake is done the engine
calls :meth:`HttpFraming.connection_made` with what it knows of the
connection and the ALPN protocol, and the framing speaks HTTP/2 (h2) when
ALPN chose ``h2``, else HTTP/1.1 (h11). Unlike an echo it also keeps time:
held-back responses (``/delay``), request deadlines and a backlog of
pipelined requests are asked for by :meth:`~HttpFraming.get_timer` and served
by :meth:`~HttpFraming.handle_timer` (aioquic's pair); the time comes from an
injected clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tlsecho.tlsbin.h1 import H1Session
from tlsecho.tlsbin.h2 import H2Session
from tlsecho.tlsbin.routes import ENDPOINTS, Health, HttpLimits, Request

__all__ = ["ENDPOINTS", "Health", "HttpFraming", "HttpLimits", "Request"]


class HttpFraming:
    """Mode ``http``: the :class:`tlsecho.wire.framing.Framing` contract, plus
    :meth:`connection_made`, the timer pair and :meth:`take_answered`."""

    __slots__ = ("_clock", "_health", "_limits", "_session", "bytes_in", "bytes_out")

    def __init__(
        self,
        health: Health,
        limits: HttpLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._health = health
        self._limits = limits or HttpLimits()
        self._clock = clock or _no_clock
        self._session: H1Session | H2Session | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def http_version(self) -> str | None:
        """``1.1`` or ``2`` once the connection is made."""
        if self._session is None:
            return None
        return "2" if isinstance(self._session, H2Session) else "1.1"

    def connection_made(self, ctx: Mapping[str, Any], alpn: str | None) -> bytes:
        """The handshake is done: what to send first (HTTP/2's SETTINGS)."""
        if alpn == "h2":
            session = H2Session(ctx, self._health, self._limits, self._clock)
            self._session = session
            return self._out(session.start())
        self._session = H1Session(ctx, self._health, self._limits, self._clock)
        return b""

    def _out(self, data: bytes) -> bytes:
        self.bytes_out += len(data)
        return data

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes (``b""``: the peer closed); the bytes to send now."""
        if self._session is None:
            raise RuntimeError("receive_data() before connection_made()")
        self.bytes_in += len(data)
        return self._out(self._session.receive_data(data))

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next wanted (None: not until more input)."""
        return self._session.get_timer() if self._session is not None else None

    def handle_timer(self, now: float) -> bytes:
        """The bytes due at ``now``."""
        if self._session is None:
            return b""
        return self._out(self._session.handle_timer(now))

    @property
    def backlog(self) -> bool:
        """Requests are waiting for the output to drain (the engine calls
        :meth:`handle_timer` once its send buffer is low)."""
        return self._session is not None and self._session.backlog

    def take_answered(self) -> list[tuple[Request | None, int]]:
        """The requests answered since the last call, with their status
        (``None`` for a request too malformed to name)."""
        if self._session is None or not self._session.answered:
            return []
        out, self._session.answered = self._session.answered, []
        return out

    @property
    def discarded(self) -> int:
        return 0

    @property
    def finished(self) -> bool:
        return self._session is not None and self._session.finished

    @property
    def terminated(self) -> bool:
        return self._session is not None and self._session.terminated

    @property
    def failure(self) -> str | None:
        """Why the connection ended early (a malformed request, a cap), or None."""
        return self._session.error if self._session is not None else None

    @property
    def peer_closed(self) -> bool:
        """The peer ended the stream (answers may still be held back)."""
        return self._session is not None and self._session.peer_closed


def _no_clock() -> float:
    return 0.0
