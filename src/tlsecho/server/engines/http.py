"""Mode ``http`` on either engine: the same connection, with tlsbin's
framing (:mod:`tlsecho.tlsbin`) where an echo framing sits, a timer for the
responses it holds back, one access-log line per request and the requests
counted by status."""

from __future__ import annotations

import logging
import ssl
from typing import Any

from tlsecho.logs import get_logger
from tlsecho.server.answer import http_context
from tlsecho.server.connection import Outcome, State
from tlsecho.server.engines.base import HIGH_WATER, EngineConnection
from tlsecho.server.engines.membio import BioTlsConnection
from tlsecho.server.engines.sslsocket import TlsConnection
from tlsecho.tlsbin import HttpFraming, HttpLimits
from tlsecho.wire.framing import Framing, FramingError

__all__ = ["HttpBioConnection", "HttpConnection"]

log_http = get_logger("http")


class HttpMixin(EngineConnection):
    """What mode ``http`` adds to an engine's connection."""

    __slots__ = ()

    def _new_framing(self) -> Framing:
        cfg = self._server.config
        limits = HttpLimits(
            max_header=cfg.max_header, max_body=cfg.max_body, request_timeout=cfg.request_timeout
        )
        return HttpFraming(self._server.health, limits, self._loop.time)

    @property
    def _http(self) -> HttpFraming:
        framing = self._framing
        assert isinstance(framing, HttpFraming)
        return framing

    def _opened(self, sock: ssl.SSLSocket) -> None:
        hello = self._hello
        proxy = self._proxy.header if self._proxy is not None else None
        ctx = http_context(
            hello.result if hello else None,
            hello.error if hello else None,
            sock,
            self._record(None),
            proxy,
        )
        first = self._http.connection_made(ctx, None if self.alpn == "-" else self.alpn)
        if first:
            self._write(first)
        if self._state is State.OPEN:
            self._read()

    def _read(self) -> None:
        super()._read()
        self._after_io()

    def _flush(self) -> None:
        super()._flush()
        self._after_io()

    def _finish(self) -> None:
        failure = self._http.failure
        if failure is None:
            super()._finish()
            return
        # A request we cannot read on: its 400 (413, 431, 408...) is on its
        # way; the connection's log line says why, once.
        self._outcome = Outcome.FRAMING_ERROR
        self._linger_exc = FramingError(failure)
        self._begin_close()

    def _after_io(self) -> None:
        """Log and count what was answered; wake up when the framing asks."""
        framing = self._http
        answered = framing.take_answered()
        if answered:
            self._log_requests(answered, framing.http_version)
        if self._ftimer is not None:
            self._ftimer.cancel()
            self._ftimer = None
        if self._state is not State.OPEN:
            return
        if framing.peer_closed:
            self._want_read(False)  # held answers still go out; EOF would wake us on and on
        when = framing.get_timer()
        # A backlog waits for the send buffer to drain (_flush comes back here).
        if when is not None and not (framing.backlog and self._wsize > HIGH_WATER):
            self._ftimer = self._loop.call_at(when, self.guard, self._on_framing_timer, when)

    def _on_framing_timer(self, when: float) -> None:
        self._ftimer = None
        if self._state is not State.OPEN:
            return
        framing = self._http
        out = framing.handle_timer(max(self._loop.time(), when))
        if out:
            self._deadlines.last_io = self._loop.time()
            self._write(out)
        if self._state is State.OPEN and framing.finished:
            self._finish()
        self._after_io()

    def _log_requests(self, answered: list[Any], version: str | None) -> None:
        metrics = self._server.metrics
        info = log_http.isEnabledFor(logging.INFO)
        for req, status in answered:
            if metrics is not None:
                metrics.http_request(status, version or "-")
            if info and req is not None:
                fields = {
                    "event": "request",
                    "method": req.method,
                    "target": req.target,
                    "http_version": version,
                    "status": status,
                }
                log_http.info(
                    "%s %s HTTP/%s %d",
                    req.method,
                    req.target,
                    version,
                    status,
                    extra={"tag": self.tag, "fields": fields},
                )

    def _close(self, exc: BaseException | None) -> None:
        if self._ftimer is not None:
            self._ftimer.cancel()
            self._ftimer = None
        super()._close(exc)


class HttpConnection(HttpMixin, TlsConnection):
    """One client of ``serve --mode http`` on the SSLSocket engine."""

    __slots__ = ()


class HttpBioConnection(HttpMixin, BioTlsConnection):
    """One client of ``serve --mode http`` on the memory-BIO engine."""

    __slots__ = ()
