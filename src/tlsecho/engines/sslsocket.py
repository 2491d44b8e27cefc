"""The SSLSocket engine: one client on a non-blocking ``ssl.SSLSocket``.

Each accepted socket is wrapped in a non-blocking ``ssl.SSLSocket`` and driven
by the event loop's reader and writer callbacks: TLS straight on the socket,
as tornado's ``SSLIOStream`` does, so the server sees every handshake failure,
holds no 256 KiB buffer per connection, and behaves the same on uvloop. The
bytes decide nothing here: a sans-IO framing says what to echo and when the
session is over; deadlines are a pure function of the time
(:mod:`tlsecho.deadlines`); the states and their changes are
:mod:`tlsecho.connection`'s. This module moves bytes and applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import sys
from typing import Any

from tlsecho.answer import hello_document
from tlsecho.connection import TRANSITIONS, ConnectionOwner, ConnectionRecord, Outcome, State
from tlsecho.deadlines import Deadlines, Expired
from tlsecho.engines.pretls import HelloPeek, ProxyPeek, client_of, hello_fault
from tlsecho.faults import ECHO_FAULTS, EchoFault
from tlsecho.framing import Framing, HelloFraming, make_framing
from tlsecho.identity import check_client
from tlsecho.logs import connection_message, get_logger
from tlsecho.net import Address
from tlsecho.proxy_protocol import ProxyProtocolError
from tlsecho.tls import server_name_of

__all__ = ["TlsConnection"]

log_conn = get_logger("echo")

# SSL_read returns at most one record: 16 KiB of plaintext (RFC 8446 5.1).
_READ_SIZE = 16384
_DRAIN_SIZE = 65536
_READS_PER_WAKEUP = 16
# Echo bytes queued for a peer that is not reading, before we stop reading it.
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024


class TlsConnection:
    """One client on a non-blocking ``ssl.SSLSocket``."""

    __slots__ = (
        "_deadlines",
        "_debug",
        "_fd",
        "_framing",
        "_hello",
        "_io",
        "_linger_exc",
        "_loop",
        "_outcome",
        "_proxy",
        "_ragged",
        "_raw",
        "_read_wants_write",
        "_reading",
        "_server",
        "_sock",
        "_state",
        "_timer",
        "_wbuf",
        "_writing",
        "_written",
        "_wsize",
        "alpn",
        "cipher",
        "client_cert",
        "fault",
        "peer",
        "real_peer",
        "sni",
        "version",
    )

    def __init__(self, server: ConnectionOwner, sock: socket.socket, peer: Address) -> None:
        self._server = server
        cfg = server.config
        self._loop = server.loop
        self._raw = sock
        self._sock: ssl.SSLSocket | None = None
        # What the hot path calls read/write/pending on: the SSLSocket's C
        # object when it has one (the Python wrappers around it cost about a
        # microsecond per message), else the SSLSocket itself (same methods).
        self._io: Any = None
        self._fd = sock.fileno()
        self._framing: Framing = self._new_framing()
        self._proxy = ProxyPeek(cfg.proxy_protocol) if cfg.proxy_protocol != "off" else None
        peek = cfg.fingerprint or cfg.faults or cfg.mode in ("hello", "http")
        self._hello = HelloPeek() if peek else None
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
        self._read_wants_write = False
        self._ragged = False
        self._writing = False
        self._linger_exc: BaseException | None = None
        self._deadlines = Deadlines(server.limits, self._loop.time())
        # While handshaking or closing, a loop timer wakes us at the
        # deadline; while open, the server's sweep does (check_deadlines).
        self._timer: asyncio.TimerHandle | None = None
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

    def start(self) -> None:
        """Begin (the server has registered the connection)."""
        if self._state is State.PROXY:
            self._want_read(True)
        else:
            self._begin_tls()

    # -- event registration ---------------------------------------------------
    def _want_read(self, on: bool) -> None:
        if on != self._reading:
            self._reading = on
            if on:
                self._loop.add_reader(self._fd, self._on_readable)
            else:
                self._loop.remove_reader(self._fd)

    def _want_write(self, on: bool) -> None:
        if on != self._writing:
            self._writing = on
            if on:
                self._loop.add_writer(self._fd, self._on_writable)
            else:
                self._loop.remove_writer(self._fd)

    def _on_readable(self) -> None:
        state = self._state
        if state is State.OPEN:
            self._read()
        elif state is State.HANDSHAKE:
            self._handshake()
        elif state is State.DRAINING:
            self._drain()
        elif state is State.CLOSING:
            self._shutdown()
        elif state is State.HELLO:
            self._begin_tls()
        elif state is State.PROXY:
            self._read_proxy_header()

    def _on_writable(self) -> None:
        state = self._state
        if state is State.HANDSHAKE:
            self._handshake()
        elif state is State.OPEN or state is State.CLOSING:
            self._flush()

    # -- PROXY header -----------------------------------------------------------
    def _read_proxy_header(self) -> None:
        assert self._proxy is not None
        try:
            header = self._proxy.read(self._raw)
        except (OSError, ProxyProtocolError) as exc:
            self._fail(Outcome.PROXY_ERROR, exc)
            return
        if header is not None:
            self.peer = client_of(header, self.real_peer, self.tag if self._debug else None)
            self._begin_tls()

    # -- handshake ------------------------------------------------------------
    def _begin_tls(self) -> None:
        """Peek at the ClientHello until it is whole, then hand over to OpenSSL."""
        hello, cfg = self._hello, self._server.config
        if hello is not None:
            if self._state is State.PROXY:
                self._enter(State.HELLO)
            if not hello.read(self._raw):
                self._want_read(True)
                return
            hello.reset(self._raw)
            fault, sni = hello_fault(self._raw, cfg.faults, hello.result)
            if fault is not None:
                self.fault, self.sni = fault.label, sni or "-"
                if fault.name in ECHO_FAULTS:  # the echo is cut: the handshake goes on
                    self._framing = EchoFault(self._framing, fault)
                else:
                    self._want_read(False)  # stall: silent until the handshake deadline
                    if fault.name != "stall":
                        self._fail(Outcome.FAULT, None)
                    return
        if self._state is not State.HANDSHAKE:
            self._enter(State.HANDSHAKE)
        self._wrap()

    def _wrap(self) -> None:
        try:
            # Ragged EOFs raise: a close without close_notify shows in the log.
            self._sock = self._server.tls.context.wrap_socket(
                self._raw,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=False,
            )
        except OSError as exc:
            self._fail(Outcome.HANDSHAKE_FAILED, exc)
            return
        # wrap_socket detached the plain socket: shutdown() in _linger() goes here.
        self._raw = self._sock
        self._io = getattr(self._sock, "_sslobj", None) or self._sock
        self._handshake()

    def _handshake(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want_write(False)
            self._want_read(True)
            return
        except ssl.SSLWantWriteError:
            self._want_read(False)
            self._want_write(True)
            return
        except OSError as exc:  # ssl.SSLError included: the peer's mistake
            self._outcome = Outcome.HANDSHAKE_FAILED
            self.sni = server_name_of(sock) or "-"
            if isinstance(exc, ssl.SSLError):
                self._linger(exc)
            else:
                self._close(exc)
            return
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
        self._want_write(False)
        self._want_read(True)
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

    def _opened(self, sock: ssl.SSLSocket) -> None:
        """The session is admitted: echo, or (mode hello) answer and close."""
        hello, framing = self._hello, self._framing
        if not isinstance(framing, HelloFraming) or hello is None:
            self._read()
            return
        self._write(
            framing.answer(hello_document(hello.result, hello.error, sock, self._record(None)))
        )
        if self._state is State.OPEN:
            self._outcome = Outcome.ANSWERED
            self._begin_close()

    # -- echo -----------------------------------------------------------------
    def _read(self) -> None:
        io = self._io
        framing = self._framing
        # Several records per wake-up, but bounded, so one busy peer cannot
        # starve the others.
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = io.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLEOFError:
                # TCP closed without close_notify: the end of the stream all
                # the same (RFC 8446 6.1 calls it a truncation risk; an echo
                # has nothing more to lose), noted in the log line.
                self._ragged = True
                data = b""
            except ssl.SSLWantWriteError:
                # A TLS 1.3 KeyUpdate reply or similar must go out first;
                # _flush() reads again once the socket is writable.
                self._read_wants_write = True
                self._want_write(True)
                return
            except OSError as exc:
                self._close(exc)
                return
            self._deadlines.last_io = self._loop.time()
            echo = framing.receive_data(data)
            if self._debug:
                log_conn.debug("received %r", data, extra={"tag": self.tag})
            if echo:
                self._write(echo)
                if self._debug:
                    log_conn.debug("sent %r", echo, extra={"tag": self.tag})
                if self._state is not State.OPEN:
                    return  # the write failed: the connection is closed
            if framing.finished:
                self._finish()
                return
            if not self._reading:
                return  # paused by backpressure
            if len(data) < _READ_SIZE and not io.pending():
                # A short record: probably the last one in the socket. The
                # loop is level-triggered, so if more is there it wakes us
                # again; reading on would mostly cost a recv that fails
                # with EAGAIN and a Python exception, per message.
                return

    def _write(self, data: bytes) -> None:
        if not self._wbuf:
            try:
                n = self._io.write(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                n = 0
            except OSError as exc:
                self._close(exc)
                return
            self._written += n
            if n == len(data):
                return
            # OpenSSL wants a retry with the same bytes: keep them whole.
            data = data[n:] if n else data
        self._wbuf.append(data)
        self._wsize += len(data)
        self._want_write(True)
        if self._wsize > _HIGH_WATER:
            # Backpressure: the peer is not reading its echo; stop reading it.
            self._want_read(False)

    def _flush(self) -> None:
        wbuf = self._wbuf
        io = self._io
        while wbuf:
            data = wbuf[0]
            try:
                n = io.write(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as exc:
                self._close(exc)
                return
            self._wsize -= n
            self._written += n
            self._deadlines.last_io = self._loop.time()
            if n < len(data):
                wbuf[0] = data[n:]
                continue
            del wbuf[0]
        self._want_write(False)
        if self._state is State.CLOSING:
            self._shutdown()
        elif self._read_wants_write:
            self._read_wants_write = False
            self._read()
        elif not self._reading and self._wsize <= _LOW_WATER:
            self._want_read(True)
            self._read()

    def _finish(self) -> None:
        """The framing is over: flush the echo, then close_notify."""
        framing = self._framing
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

    # -- closing --------------------------------------------------------------
    def _begin_close(self) -> None:
        if self._state is not State.OPEN:
            return  # already closing or closed
        self._enter(State.CLOSING)
        self._deadlines.closing(self._loop.time())
        self._arm_timer()
        if self._wbuf:
            self._want_read(False)
            self._want_write(True)  # _flush() calls _shutdown() when done
        else:
            # Reading stays registered: the drain after close_notify reads
            # on (every add_reader/remove_reader pair is an epoll_ctl pair
            # and, on uvloop, a handle: ~5 % of a connection's CPU).
            self._shutdown()

    def _shutdown(self) -> None:
        assert self._sock is not None
        try:
            self._sock.unwrap()
        except ssl.SSLWantWriteError:
            self._want_read(False)  # wait for writability, not for the peer
            self._want_write(True)
            return
        except ssl.SSLError:
            # SSLWantReadError: our close_notify is out, the peer's has not
            # come yet. Any other SSLError here is the peer sending data
            # after our close_notify ("application data after close
            # notify"): discard it all the same.
            pass
        except OSError as exc:
            self._close(exc if self._outcome is None else None)
            return
        else:
            self._close(self._linger_exc)  # both close_notify alerts exchanged
            return
        # Read and discard what the peer still sends (bytes after the NUL,
        # its close_notify) until it closes: closing with unread bytes would
        # send a TCP reset, which can destroy the echo in the peer's buffers.
        self._enter(State.DRAINING)
        self._want_write(False)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_WR)
        self._want_read(True)
        self._drain()

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

    def _drain(self) -> None:
        fd = self._fd
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = os.read(fd, _DRAIN_SIZE)
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
            self._timer = self._loop.call_at(when, self._on_timer, when)

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
        self._wbuf.clear()
        (self._sock or self._raw).close()
        record = self._record(exc)
        if log_conn.isEnabledFor(logging.INFO):
            fields = record.as_fields()
            extra = {"tag": self.tag, "fields": fields, "hello": record.hello}
            log_conn.info(connection_message(fields), extra=extra)
        self._server.connection_lost(self, record)

    def _record(self, exc: BaseException | None) -> ConnectionRecord:
        return ConnectionRecord.build(
            peer=self.peer,
            real_peer=self.real_peer,
            tls=(self.version, self.cipher, self.sni, self.alpn),
            client_cert=self.client_cert,
            framing=self._framing,
            written=self._written,
            duration=self._loop.time() - self._deadlines.started,
            outcome=self._outcome,
            exc=exc,
            ragged=self._ragged,
            worker=self._server.worker,
            endpoint=self._server.name,
            hello=self._hello.result if self._hello else None,
            fault=self.fault,
        )
