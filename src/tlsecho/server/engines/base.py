"""What both engines share: one connection's state, deadlines, the decisions
after the handshake, the end and its record.

An engine (:mod:`tlsecho.server.engines.sslsocket`, :mod:`tlsecho.server.engines.membio`)
subclasses :class:`EngineConnection` and moves the bytes: it implements
:meth:`~EngineConnection.start`, ``_read`` (give the plaintext that has come
to the framing), ``_write`` (encrypt and send bytes), ``_send_close``
(close_notify) and ``_release`` (close the socket; how many bytes the kernel never took).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import sys
import traceback
from typing import Any, ClassVar

from tlsecho.logs import connection_message, get_logger
from tlsecho.server.answer import hello_document
from tlsecho.server.connection import TRANSITIONS, ConnectionOwner, ConnectionRecord, Outcome, State
from tlsecho.server.engines.barrier import DRAIN_SIZE, DRAINS_PER_WAKEUP, LINGER_ZERO, ErrorBarrier
from tlsecho.server.engines.pretls import hello_fault
from tlsecho.server.identity import check_client
from tlsecho.server.net import Address
from tlsecho.tls import server_name_of
from tlsecho.wire.deadlines import Deadlines, Expired
from tlsecho.wire.faults import ECHO_FAULTS, RECORD_FAULTS, EchoFault, FaultSpec
from tlsecho.wire.framing import Framing, HelloFraming, make_framing

__all__ = ["HIGH_WATER", "LOW_WATER", "EngineConnection", "log_conn"]

log_conn = get_logger("echo")

# Echo bytes queued for a peer that is not reading, before we stop reading it.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024

_PLAIN_HTTP_BODY = b"400 Bad Request: plain HTTP request sent to an HTTPS port\n"
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nServer: tlsecho\r\nContent-Type: text/plain\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_PLAIN_HTTP_BODY)
) + _PLAIN_HTTP_BODY


class EngineConnection(ErrorBarrier):
    """One client of the server, whatever moves its bytes."""

    __slots__ = (
        "_deadlines",
        "_debug",
        "_framing",
        "_hello",
        "_io",
        "_linger_exc",
        "_proxy",
        "_ragged",
        "_wbuf",
        "_written",
        "_wsize",
        "alpn",
        "cipher",
        "client_cert",
        "fault",
        "real_peer",
        "sni",
        "version",
    )

    #: The engine's readers of what comes before TLS: a PROXY header
    #: (``Accept`` -> an object with ``header``) and the ClientHello (an
    #: object with ``result`` and ``error``).
    proxy_reader: ClassVar[Any]
    hello_reader: ClassVar[Any]

    def __init__(self, server: ConnectionOwner, sock: socket.socket, peer: Address) -> None:
        self._server = server
        cfg = server.config
        self._loop = server.loop
        self._raw: Any = sock
        self._fd = sock.fileno()
        self._sock: Any = None  # the SSLSocket or SSLObject, once TLS begins
        self._io: Any = None  # what reads and writes call (see _adopt)
        self._framing: Framing = self._new_framing()
        self._proxy = self.proxy_reader(cfg.proxy_protocol) if cfg.proxy_protocol != "off" else None
        peek = cfg.fingerprint or cfg.faults or cfg.mode in ("hello", "http")
        self._hello = self.hello_reader() if peek else None
        first = State.HELLO if self._hello else State.HANDSHAKE
        self._state = State.PROXY if self._proxy else first
        self._outcome: Outcome | None = None
        # A list, not a deque: empty, it costs 56 bytes instead of a deque's
        # 760 (per connection, idle ones included), and it rarely holds more
        # than a few chunks (64 KiB high water).
        self._wbuf: list[bytes] = []
        self._wsize = 0
        self._written = 0  # echo bytes OpenSSL took (sent or being sent)
        self._reading = False
        self._writing = False
        self._ragged = False
        self._linger_exc: BaseException | None = None
        self._logged = False  # the connection's one line is out
        self._deadlines = Deadlines(server.limits, self._loop.time())
        # While handshaking or closing, a loop timer wakes us at the
        # deadline; while open, the server's sweep does (check_deadlines).
        self._timer: asyncio.TimerHandle | None = None
        self._ftimer: asyncio.TimerHandle | None = None  # the framing's (mode http)
        self._arm_timer()
        self._debug = log_conn.isEnabledFor(logging.DEBUG)
        self.peer = peer
        """The client's address: the PROXY header's source when there is one."""
        self.real_peer = peer
        """The address the TCP connection came from (the proxy, if any)."""
        self.version = self.cipher = self.alpn = self.sni = "-"
        self.client_cert: str | None = None
        """The client certificate's subject, when one was presented."""
        self.fault: str | None = None

    def _new_framing(self) -> Framing:
        return make_framing(self._server.config.mode, max_line=self._server.config.max_line)

    @property
    def tag(self) -> str:
        """The log lines' prefix: made when needed, not held by idle connections."""
        return f"echo_{self.peer[0]}_{self.peer[1]}"

    def _enter(self, state: State) -> None:
        """Move to ``state``; only the changes in :data:`TRANSITIONS` exist."""
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"connection state {self._state.value} -> {state.value}")
        self._state = state

    # -- what an engine does ----------------------------------------------------
    def start(self) -> None:
        """Begin (the server has registered the connection)."""
        raise NotImplementedError

    def _read(self) -> None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """Send what waits in the send buffer (the socket is writable)."""
        raise NotImplementedError

    def _begin_close(self) -> None:
        """Start the bounded TLS close once (OPEN -> CLOSING, the close
        deadline armed); the engine sends close_notify (:meth:`_send_close`)."""
        if self._state is not State.OPEN:
            return  # already closing or closed
        self._enter(State.CLOSING)
        self._deadlines.closing(self._loop.time())
        self._arm_timer()
        self._send_close()

    def _send_close(self) -> None:
        """Send close_notify (or queue it behind what is still to send)."""
        raise NotImplementedError

    def _adopt(self, sock: Any) -> None:
        """The TLS object reads and writes go through: the C-level
        ``_sslobj`` under Python's wrapper when there is one (the Python
        wrappers cost about a microsecond per message), else the wrapper
        itself (same methods)."""
        self._sock = sock
        self._io = getattr(sock, "_sslobj", None) or sock

    def _release(self) -> int:
        """Close the socket; the bytes queued that the kernel never took."""
        raise NotImplementedError

    # -- event registration ---------------------------------------------------
    def _want_read(self, on: bool) -> None:
        if on != self._reading:
            self._reading = on
            if on:
                self._loop.add_reader(self._fd, self.guard, self._on_readable)
            else:
                self._loop.remove_reader(self._fd)

    def _want_write(self, on: bool) -> None:
        if on != self._writing:
            self._writing = on
            if on:
                self._loop.add_writer(self._fd, self.guard, self._on_writable)
            else:
                self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        raise NotImplementedError

    def _on_writable(self) -> None:
        raise NotImplementedError

    # -- the ClientHello's faults ---------------------------------------------------
    def _hello_fault(self) -> bool:
        """The ClientHello is in: a ``--fault`` for it fires or not. True
        when the handshake goes on (no fault, or one that cuts the echo)."""
        assert self._hello is not None
        fault, sni = hello_fault(self._raw, self._server.config.faults, self._hello.result)
        if fault is None:
            return True
        self.fault, self.sni = fault.label, sni or "-"
        if fault.name in ECHO_FAULTS:  # the echo is cut: the handshake goes on
            self._framing = EchoFault(self._framing, fault)
            return True
        if fault.name in RECORD_FAULTS:  # our records: the engine's to shape
            self._record_fault(fault)
            return True
        if fault.name == "stall":
            self._stall()
        else:
            self._want_read(False)
            self._fail(Outcome.FAULT, None)
        return False

    def _stall(self) -> None:
        """``--fault stall``: silent until the handshake deadline, but still
        listening: what the client sends is read and dropped, so its FIN or
        reset ends the connection then, not at the deadline (issue 17)."""
        self._want_read(False)
        self._loop.add_reader(self._fd, self.guard, self._stalled_read)
        self._reading = True  # _close() unhooks it as any reader
        self._stalled_read()

    def _stalled_read(self) -> None:
        for _ in range(DRAINS_PER_WAKEUP):  # bounded: a flood cannot hold the loop
            try:
                data = socket.socket.recv(self._raw, DRAIN_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:  # a reset
                self._fail(Outcome.HANDSHAKE_FAILED, exc)
                return
            if not data:
                why = EOFError("the client closed during the stall")
                self._fail(Outcome.HANDSHAKE_FAILED, why)
                return

    def _record_fault(self, fault: FaultSpec) -> None:
        """A fault on our records (``--engine membio`` only: the configuration
        refuses them on another engine)."""
        raise RuntimeError(f"--fault {fault.name} needs --engine membio")

    def _reset(self) -> None:
        """End with a TCP reset (a fault that fires)."""
        with contextlib.suppress(OSError):
            self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self._fail(Outcome.FAULT, None)

    # -- after the handshake ----------------------------------------------------
    def _handshake_done(self, sock: Any) -> None:
        """The handshake succeeded: the session opens, is refused (ALPN,
        identity) or, in mode hello, answered."""
        self._enter(State.OPEN)
        now = self._loop.time()
        self._deadlines.opened(now)
        self._arm_timer()
        self._server.watch_deadlines()
        # Interned: a handful of distinct values, held by every open connection.
        self.version = sys.intern(sock.version() or "-")
        cipher = sock.cipher()
        self.cipher = sys.intern(cipher[0]) if cipher else "-"
        self.alpn = sock.selected_alpn_protocol() or "-"
        self.sni = server_name_of(sock) or "-"
        metrics = self._server.metrics
        if metrics is not None:
            metrics.handshake_done(self.version, self.cipher, now - self._deadlines.started)
        if self._debug:
            log_conn.debug("connection accepted", extra={"tag": self.tag})
        cfg = self._server.config
        self.client_cert, refusal = check_client(sock, self.tag, self._server.policy, cfg)
        if cfg.alpn_required and self.alpn == "-":
            # Python cannot fail the handshake from the ALPN callback, so the
            # refusal comes right after it: no echo, close_notify, one line.
            self._outcome = Outcome.ALPN_REFUSED
            self._begin_close()
        elif refusal is not None:  # no --allow-* matched: close_notify, no echo
            self._outcome = Outcome.IDENTITY_REFUSED
            self._linger_exc = PermissionError(refusal)
            self._begin_close()
        elif self._server.hard_closing:
            self.close()
        else:
            self._opened(sock)

    def _handshake_failed(self, sock: Any, exc: OSError) -> None:
        self._outcome = Outcome.HANDSHAKE_FAILED
        self.sni = server_name_of(sock) or "-"
        if (
            self._server.config.mode == "http"
            and isinstance(exc, ssl.SSLError)
            and exc.reason == "HTTP_REQUEST"
        ):
            # As nginx does: a browser or curl pointed at http:// sees why.
            with contextlib.suppress(OSError):
                socket.socket.send(self._raw, _PLAIN_HTTP_ANSWER, socket.MSG_DONTWAIT)

    def _opened(self, sock: Any) -> None:
        """The session is admitted: echo, or (mode hello) answer and close."""
        hello, framing = self._hello, self._framing
        if not isinstance(framing, HelloFraming) or hello is None:
            self._read()
            return
        doc = hello_document(hello.result, hello.error, sock, self._record(None))
        self._write(framing.answer(doc))
        if self._state is State.OPEN:
            self._outcome = Outcome.ANSWERED
            self._begin_close()

    def _finish(self) -> None:
        """The framing is over: flush the echo, then close_notify (or, for
        ``--fault reset-after``, a reset)."""
        framing = self._framing
        if isinstance(framing, EchoFault) and framing.resets and framing.finished:
            self._reset()
            return
        error = getattr(framing, "error", None)
        if error is not None:
            self._outcome = Outcome.FRAMING_ERROR
            log_conn.info("%s: closing connection", error, extra={"tag": self.tag})
        else:
            self._outcome = Outcome.TERMINATED if framing.terminated else Outcome.EOF
            if self._debug:
                why = "message terminated" if framing.terminated else "end of stream"
                log_conn.debug("%s, closing connection", why, extra={"tag": self.tag})
        self._begin_close()

    # -- lingering ------------------------------------------------------------------
    def _linger(self, exc: BaseException) -> None:
        """After a refused handshake, let the peer read our alert.

        A TLS 1.3 client sends data right behind its Finished, before we
        judge its certificate; closing with that data unread would send a
        TCP reset, which destroys the alert in the client's buffers. So: FIN,
        then read and discard until the peer closes, for a second at most.
        """
        self._linger_exc = exc
        self._enter(State.DRAINING)
        self._deadlines.lingering(self._loop.time())
        self._arm_timer()
        self._want_write(False)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._raw, socket.SHUT_WR)
        self._want_read(True)
        self._drain()

    def _drain_after_close(self) -> None:
        """Our close_notify is out: read and discard what the peer still
        sends (bytes after the NUL, its close_notify) until it closes.
        Closing with unread bytes would send a TCP reset, which can destroy
        the echo in the peer's buffers."""
        self._enter(State.DRAINING)
        self._want_write(False)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._raw, socket.SHUT_WR)
        self._want_read(True)
        self._drain()

    def _drain(self) -> None:
        """Read and discard until the peer closes (DRAINING)."""
        fd = self._fd
        for _ in range(DRAINS_PER_WAKEUP):
            try:
                data = os.read(fd, DRAIN_SIZE)
            except BlockingIOError:
                return
            except OSError:
                break
            if not data:
                break
        else:
            return
        self._close(self._linger_exc)

    # -- deadlines --------------------------------------------------------------
    def _arm_timer(self) -> None:
        """A loop timer at the next deadline while handshaking or closing;
        none while open (the server's sweep calls :meth:`check_deadlines`)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is State.OPEN:
            return
        when = self._deadlines.get_timer()
        if when is not None:
            self._timer = self._loop.call_at(when, self.guard, self._on_timer, when)

    def check_deadlines(self, now: float) -> bool:
        """Close an open session past its idle timeout or session limit (the
        server's sweep calls this). True if the connection is still open."""
        if self._state is not State.OPEN:
            return False
        expired = self._deadlines.handle_timer(now)
        if expired is None:
            return True
        self._outcome = (
            Outcome.SESSION_TIMEOUT if expired is Expired.SESSION else Outcome.IDLE_TIMEOUT
        )
        log_conn.info("%s: closing connection", self._outcome, extra={"tag": self.tag})
        self._begin_close()
        return False

    def _on_timer(self, when: float) -> None:
        self._timer = None
        # The loop fired the timer set for ``when``: that moment has come, even
        # if its clock (uvloop's counts whole milliseconds) still reads earlier.
        expired = self._deadlines.handle_timer(max(self._loop.time(), when))
        if expired is Expired.HANDSHAKE:
            if self._state is State.PROXY:
                self._fail(Outcome.PROXY_ERROR, TimeoutError("PROXY header timed out"))
            else:
                self._fail(Outcome.HANDSHAKE_FAILED, TimeoutError("handshake timed out"))
        elif expired is Expired.CLOSE:
            # The peer does not take its echo or does not close: give up.
            self._close(self._linger_exc)
        else:  # the deadline moved (a state change re-armed it): wait on
            self._arm_timer()

    # -- the end ----------------------------------------------------------------
    def close(self) -> None:
        """Close for server shutdown: flush, close_notify, close."""
        if self._state in (State.HANDSHAKE, State.PROXY, State.HELLO):
            self._fail(Outcome.SERVER_SHUTDOWN, None)
        elif self._state is State.OPEN:
            self._outcome = Outcome.SERVER_SHUTDOWN
            self._begin_close()

    def abort(self) -> None:
        """Drop the connection now."""
        if self._outcome is None:
            self._outcome = Outcome.SERVER_SHUTDOWN
        self._close(None)

    def _fail(self, outcome: Outcome, exc: BaseException | None) -> None:
        self._outcome = outcome
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        if self._state is State.CLOSED:
            return
        self._enter(State.CLOSED)
        self._deadlines.done()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._want_read(False)
        self._want_write(False)
        unsent = self._release()
        self._wbuf.clear()
        self._wsize = 0
        record = self._record(exc, unsent)
        if log_conn.isEnabledFor(logging.INFO):
            fields = record.as_fields()
            if record.outcome is Outcome.INTERNAL_ERROR and exc is not None:
                # Our bug, not the peer's: the traceback is a field of the
                # JSON record (the text line stays one line; -v shows it).
                fields["traceback"] = "".join(traceback.format_exception(exc))
                if self._debug:
                    log_conn.debug("internal error", exc_info=exc, extra={"tag": self.tag})
            extra = {"tag": self.tag, "fields": fields, "hello": record.hello}
            log_conn.info(connection_message(fields), extra=extra)
        self._logged = True
        self._server.connection_lost(self, record)

    def _record(self, exc: BaseException | None, unsent: int = 0) -> ConnectionRecord:
        # Bytes the kernel never took did not go out: the log says what did.
        written = max(0, self._written - unsent) if unsent else self._written
        return ConnectionRecord.build(
            peer=self.peer,
            real_peer=self.real_peer,
            tls=(self.version, self.cipher, self.sni, self.alpn),
            client_cert=self.client_cert,
            framing=self._framing,
            written=written,
            duration=self._loop.time() - self._deadlines.started,
            outcome=self._outcome,
            exc=exc,
            ragged=self._ragged,
            worker=self._server.worker,
            endpoint=self._server.name,
            hello=self._hello.result if self._hello else None,
            fault=self.fault,
        )
