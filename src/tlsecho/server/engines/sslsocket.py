"""The SSLSocket engine: one client on a non-blocking ``ssl.SSLSocket``.

Each accepted socket is wrapped in a non-blocking ``ssl.SSLSocket`` and driven
by the event loop's reader and writer callbacks: TLS straight on the socket,
as tornado's ``SSLIOStream`` does, so the server sees every handshake failure,
holds no 256 KiB buffer per connection, and behaves the same on uvloop. The
bytes decide nothing here: a sans-IO framing says what to echo and when the
session is over; deadlines are a pure function of the time
(:mod:`tlsecho.wire.deadlines`); the states and their changes are
:mod:`tlsecho.server.connection`'s. This module moves bytes and applies them.
"""

from __future__ import annotations

import socket
import ssl

from tlsecho.server.connection import ConnectionOwner, Outcome, State
from tlsecho.server.engines.base import HIGH_WATER, LOW_WATER, EngineConnection, log_conn
from tlsecho.server.engines.pretls import HelloPeek, ProxyPeek, client_of
from tlsecho.server.net import Address
from tlsecho.wire.proxy_protocol import ProxyProtocolError

__all__ = ["TlsConnection"]

# SSL_read returns at most one record: 16 KiB of plaintext (RFC 8446 5.1).
_READ_SIZE = 16384
_READS_PER_WAKEUP = 16
_HIGH_WATER, _LOW_WATER = HIGH_WATER, LOW_WATER


class TlsConnection(EngineConnection):
    """One client on a non-blocking ``ssl.SSLSocket``."""

    __slots__ = ("_read_wants_write",)

    proxy_reader = ProxyPeek
    hello_reader = HelloPeek

    def __init__(self, server: ConnectionOwner, sock: socket.socket, peer: Address) -> None:
        super().__init__(server, sock, peer)
        self._read_wants_write = False

    def start(self) -> None:
        """Begin (the server has registered the connection)."""
        if self._state is State.PROXY:
            self._want_read(True)
        else:
            self._begin_tls()

    # -- events -----------------------------------------------------------------
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
        hello = self._hello
        if hello is not None:
            if self._state is State.PROXY:
                self._enter(State.HELLO)
            if not hello.read(self._raw):
                self._want_read(True)
                return
            hello.reset(self._raw)
            if not self._hello_fault():
                return
        if self._state is not State.HANDSHAKE:
            self._enter(State.HANDSHAKE)
        self._wrap()

    def _wrap(self) -> None:
        try:
            # Ragged EOFs raise: a close without close_notify shows in the log.
            sock = self._server.tls.context.wrap_socket(
                self._raw,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=False,
            )
        except OSError as exc:
            self._fail(Outcome.HANDSHAKE_FAILED, exc)
            return
        # wrap_socket detached the plain socket: shutdown() in _linger() goes here.
        self._raw = sock
        self._adopt(sock)
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
            self._handshake_failed(sock, exc)
            if isinstance(exc, ssl.SSLError):
                self._linger(exc)
            else:
                self._close(exc)
            return
        self._want_write(False)
        self._want_read(True)
        self._handshake_done(sock)

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

    # -- closing --------------------------------------------------------------
    def _send_close(self) -> None:
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
        self._drain_after_close()

    # -- the end ----------------------------------------------------------------
    def _release(self) -> int:
        (self._sock or self._raw).close()
        return 0  # _written counts only what OpenSSL took
