"""The TLS echo server: the listener and one state machine per connection.

Each accepted socket is wrapped in a non-blocking ``ssl.SSLSocket`` and driven
by the event loop's reader/writer callbacks. The bytes decide nothing here:
a sans-IO framing object says what to echo and when the session is over;
this module moves bytes, applies timeouts and backpressure, and logs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import errno
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

from tlsecho.certs import ensure_default_pair
from tlsecho.config import ServerConfig
from tlsecho.errors import ConfigError, ListenError
from tlsecho.framing import NulFraming
from tlsecho.logs import get_logger
from tlsecho.tls import server_context

__all__ = ["Address", "EchoServer", "run_until_signalled", "serve"]

Address = tuple[str, int]

log_main = get_logger("main")
log_conn = get_logger("echo")

# SSL_read returns at most one record: 16 KiB of plaintext (RFC 8446 5.1).
_READ_SIZE = 16384
_DRAIN_SIZE = 65536
_READS_PER_WAKEUP = 16
# Echo bytes queued for a peer that is not reading, before we stop reading it.
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024
_ACCEPTS_PER_WAKEUP = 64
_ACCEPT_RETRY_DELAY = 0.1


def format_address(addr: Address) -> str:
    """``127.0.0.1:10000`` or ``[::1]:10000``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _failure_reason(exc: BaseException | None) -> str:
    """A short, stable word or two for why a connection ended badly."""
    if exc is None:
        return "closed"
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or exc.__class__.__name__).lower().replace("_", " ")
    if isinstance(exc, TimeoutError | ConnectionAbortedError) and "timed out" in str(exc):
        return "timeout"
    if isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc):
        return "timeout"  # asyncio's handshake timeout message
    if isinstance(exc, ConnectionResetError):
        return "reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return exc.__class__.__name__


class _State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # flushing the echo, then sending close_notify
    DRAINING = "draining"  # close_notify sent: discard what the peer still sends
    CLOSED = "closed"


class _TlsConnection:
    """One client on a non-blocking ``ssl.SSLSocket`` driven by the loop's
    reader and writer callbacks: TLS straight on the socket, as tornado's
    ``SSLIOStream`` does, so the server sees every handshake failure, holds no
    256 KiB buffer per connection, and behaves the same on uvloop.
    """

    __slots__ = (
        "_debug",
        "_fd",
        "_framing",
        "_loop",
        "_outcome",
        "_read_wants_write",
        "_reading",
        "_server",
        "_sock",
        "_started",
        "_state",
        "_timer",
        "_wbuf",
        "_writing",
        "_wsize",
        "cipher",
        "peer",
        "tag",
        "version",
    )

    def __init__(self, server: EchoServer, sock: ssl.SSLSocket, peer: Address) -> None:
        self._server = server
        self._loop = server.loop
        self._sock = sock
        self._fd = sock.fileno()
        self._framing = NulFraming()
        self._state = _State.HANDSHAKE
        self._outcome: str | None = None
        self._wbuf: collections.deque[bytes] = collections.deque()
        self._wsize = 0
        self._reading = False
        self._read_wants_write = False
        self._writing = False
        self._started = self._loop.time()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            server.config.handshake_timeout, self._on_timeout
        )
        self._debug = log_conn.isEnabledFor(logging.DEBUG)
        self.peer = peer
        self.tag = f"echo_{peer[0]}_{peer[1]}"
        self.version = "-"
        self.cipher = "-"

    def start(self) -> None:
        """Begin the handshake (the server has registered the connection)."""
        self._handshake()

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
        if state is _State.OPEN:
            self._read()
        elif state is _State.HANDSHAKE:
            self._handshake()
        elif state is _State.DRAINING:
            self._drain()
        elif state is _State.CLOSING:
            self._shutdown()

    def _on_writable(self) -> None:
        state = self._state
        if state is _State.HANDSHAKE:
            self._handshake()
        elif state is _State.OPEN or state is _State.CLOSING:
            self._flush()

    # -- handshake ------------------------------------------------------------
    def _handshake(self) -> None:
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want_write(False)
            self._want_read(True)
            return
        except ssl.SSLWantWriteError:
            self._want_read(False)
            self._want_write(True)
            return
        except OSError as exc:  # ssl.SSLError included: the peer's mistake
            self._outcome = "handshake-failed"
            self._close(exc)
            return
        self._cancel_timer()
        self._state = _State.OPEN
        self.version = self._sock.version() or "-"
        cipher = self._sock.cipher()
        self.cipher = cipher[0] if cipher else "-"
        if self._debug:
            log_conn.debug("connection accepted", extra={"tag": self.tag})
        self._want_write(False)
        self._want_read(True)
        if self._server.closing:
            self.close()
        else:
            self._read()

    # -- echo -----------------------------------------------------------------
    def _read(self) -> None:
        sock = self._sock
        framing = self._framing
        # Several records per wake-up, but bounded, so one busy peer cannot
        # starve the others.
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = sock.recv(_READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                # A TLS 1.3 KeyUpdate reply or similar must go out first;
                # _flush() reads again once the socket is writable.
                self._read_wants_write = True
                self._want_write(True)
                return
            except OSError as exc:
                self._close(exc)
                return
            echo = framing.receive_data(data)
            if self._debug:
                log_conn.debug("received %r", data, extra={"tag": self.tag})
            if echo:
                self._write(echo)
                if self._debug:
                    log_conn.debug("sent %r", echo, extra={"tag": self.tag})
            if framing.finished:
                self._finish()
                return
            if not self._reading or self._state is not _State.OPEN:
                return  # paused by backpressure, or failed while writing

    def _write(self, data: bytes) -> None:
        if not self._wbuf:
            try:
                n = self._sock.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                n = 0
            except OSError as exc:
                self._close(exc)
                return
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
        sock = self._sock
        while wbuf:
            data = wbuf[0]
            try:
                n = sock.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as exc:
                self._close(exc)
                return
            self._wsize -= n
            if n < len(data):
                wbuf[0] = data[n:]
                continue
            wbuf.popleft()
        self._want_write(False)
        if self._state is _State.CLOSING:
            self._shutdown()
        elif self._read_wants_write:
            self._read_wants_write = False
            self._read()
        elif not self._reading and self._wsize <= _LOW_WATER:
            self._want_read(True)
            self._read()

    def _finish(self) -> None:
        """The framing is over: flush the echo, then close_notify."""
        if self._framing.terminated:
            self._outcome = "terminated"
            if self._debug:
                log_conn.debug("message terminated, closing connection", extra={"tag": self.tag})
        else:
            self._outcome = "eof"
            if self._debug:
                log_conn.debug("end of stream, closing connection", extra={"tag": self.tag})
        self._begin_close()

    # -- closing --------------------------------------------------------------
    def _begin_close(self) -> None:
        self._state = _State.CLOSING
        self._want_read(False)
        self._cancel_timer()
        self._timer = self._loop.call_later(self._server.config.shutdown_timeout, self._on_timeout)
        if self._wbuf:
            self._want_write(True)  # _flush() calls _shutdown() when done
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._sock.unwrap()
        except ssl.SSLWantWriteError:
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
            self._close(None)  # both close_notify alerts exchanged
            return
        # Read and discard what the peer still sends (bytes after the NUL,
        # its close_notify) until it closes: closing with unread bytes would
        # send a TCP reset, which can destroy the echo in the peer's buffers.
        self._state = _State.DRAINING
        self._want_write(False)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_WR)
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
        self._close(None)

    def _on_timeout(self) -> None:
        self._timer = None
        if self._state is _State.HANDSHAKE:
            self._outcome = "handshake-failed"
            self._close(TimeoutError("handshake timed out"))
        elif self._state is _State.CLOSING or self._state is _State.DRAINING:
            # The peer does not take its echo or does not close: give up.
            self._close(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Close for server shutdown: flush, close_notify, close."""
        if self._state is _State.HANDSHAKE:
            self._outcome = "server-shutdown"
            self._close(None)
        elif self._state is _State.OPEN:
            self._outcome = "server-shutdown"
            self._begin_close()

    def abort(self) -> None:
        """Drop the connection now."""
        if self._outcome is None:
            self._outcome = "server-shutdown"
        self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._cancel_timer()
        self._want_read(False)
        self._want_write(False)
        self._wbuf.clear()
        self._sock.close()
        self._server._connection_lost(self)
        outcome = self._outcome
        if outcome is None:
            outcome = "eof" if exc is None else "error"
        f = self._framing
        reason = ""
        if exc is not None:
            reason = f" reason={_failure_reason(exc)!r}"
        log_conn.info(
            "done peer=%s tls=%s cipher=%s in=%d out=%d discarded=%d duration=%.3fs end=%s%s",
            format_address(self.peer),
            self.version,
            self.cipher,
            f.bytes_in,
            f.bytes_out,
            f.discarded,
            self._loop.time() - self._started,
            outcome,
            reason,
            extra={"tag": self.tag},
        )


def _resolve(host: str, port: int) -> list[tuple[int, Any]]:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {host!r}: {exc.strerror}") from None
    seen: set[Any] = set()
    result: list[tuple[int, Any]] = []
    for family, _, _, _, sockaddr in infos:
        key = (family, sockaddr[0])
        if key not in seen:
            seen.add(key)
            result.append((family, sockaddr))
    return result


def _bind(host: str, port: int) -> list[socket.socket]:
    """Bind every address ``host`` resolves to, all on one port."""
    socks: list[socket.socket] = []
    try:
        for family, sockaddr in _resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                # Port 0: every address shares the port the first one got.
                sockaddr = (sockaddr[0], socks[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                where = format_address((sockaddr[0], sockaddr[1]))
                raise ListenError(
                    f"cannot listen on {where}: {(exc.strerror or str(exc)).lower()}"
                ) from None
            sock.listen(1024)
            sock.setblocking(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


class EchoServer:
    """The TLS echo server, as a library object.

    Use it as an async context manager::

        async with EchoServer(ServerConfig(host="127.0.0.1", port=0)) as server:
            print(server.addresses)

    Args:
        config: how to listen and what to present.
        ssl_context: a ready server context; by default one is built from
            ``config.cert``/``config.key`` (or the per-user default pair).
    """

    def __init__(
        self, config: ServerConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config or ServerConfig()
        self._ctx = ssl_context
        self._listeners: list[socket.socket] = []
        self._conns: set[_TlsConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accept_paused = False
        self.closing = False
        """True once :meth:`aclose` has begun."""
        self.addresses: list[Address] = []
        """The bound addresses, after :meth:`start`."""
        self.cert_path = self.config.cert
        """The certificate presented (after :meth:`start`, also the default one)."""
        self.connections_total = 0
        """Connections accepted so far."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on (after :meth:`start`)."""
        assert self._loop is not None, "server not started"
        return self._loop

    @property
    def port(self) -> int:
        """The bound port (the same on every address)."""
        return self.addresses[0][1]

    @property
    def connections_open(self) -> int:
        """Connections open now, handshaking ones included."""
        return len(self._conns)

    def _context(self) -> ssl.SSLContext:
        cfg = self.config
        if self._ctx is not None:
            return self._ctx
        if cfg.cert is None or cfg.key is None:
            pair, created = ensure_default_pair()
            log_main.info(
                "%s default certificate %s (clients trust it by default)",
                "created" if created else "using",
                pair.cert,
            )
            self.cert_path = pair.cert
            return server_context(pair.cert, pair.key)
        return server_context(cfg.cert, cfg.key, cfg.key_password)

    async def start(self) -> None:
        """Load the certificate and start listening.

        Raises:
            CertificateError: certificate or key unusable.
            ListenError: cannot resolve or bind.
        """
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._ctx = self._context()
        log_main.info("starting up on %s port %s", cfg.host, cfg.port)
        self._listeners = _bind(cfg.host, cfg.port)
        self.addresses = [s.getsockname()[:2] for s in self._listeners]
        self._start_accepting()
        log_main.info("listening on %s", ", ".join(format_address(a) for a in self.addresses))

    def _start_accepting(self) -> None:
        self._accept_paused = False
        for lsock in self._listeners:
            self.loop.add_reader(lsock.fileno(), self._accept, lsock)

    def _stop_accepting(self) -> None:
        for lsock in self._listeners:
            self.loop.remove_reader(lsock.fileno())

    def _accept(self, lsock: socket.socket) -> None:
        ctx = self._ctx
        assert ctx is not None
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: pause accepting briefly instead of
                    # spinning; the backlog keeps the waiting clients.
                    if not self._accept_paused:
                        log_main.warning("accept paused: %s", os.strerror(exc.errno))
                    self._accept_paused = True
                    self._stop_accepting()
                    self.loop.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting)
                    return
                raise
            peer = (str(addr[0]), int(addr[1]))
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError as exc:
                sock.close()
                log_conn.info(
                    "done peer=%s end=error reason=%r", format_address(peer), _failure_reason(exc)
                )
                continue
            self.connections_total += 1
            self._idle.clear()
            conn = _TlsConnection(self, tls, peer)
            self._conns.add(conn)
            conn.start()

    def _resume_accepting(self) -> None:
        if not self.closing:
            self._start_accepting()

    def _connection_lost(self, conn: _TlsConnection) -> None:
        self._conns.discard(conn)
        if not self._conns:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no connection is open (handshaking ones included)."""
        await self._idle.wait()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        """Stop accepting, close every connection with close_notify, wait.

        Connections still open after ``config.shutdown_timeout`` are aborted.
        """
        if self.closing:
            return
        self.closing = True
        if self._loop is None:
            return
        self._stop_accepting()
        for lsock in self._listeners:
            lsock.close()
        for conn in list(self._conns):
            conn.close()
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                await self._idle.wait()
        except TimeoutError:
            for conn in list(self._conns):
                conn.abort()

    async def __aenter__(self) -> EchoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def serve(
    config: ServerConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[list[Address]]:
    """Run an :class:`EchoServer` for the body of an ``async with``.

    Yields:
        The bound addresses (host, port).
    """
    async with EchoServer(config, ssl_context=ssl_context) as server:
        yield server.addresses


def new_event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop factory for ``--loop``: ``auto`` prefers uvloop when installed."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError(
                    "--loop uvloop: uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """One line for a peer's or the network's error; a traceback only for our bugs."""
    exc = context.get("exception")
    if isinstance(exc, OSError):  # ssl.SSLError included
        log_main.warning("%s: %s", context.get("message", "error"), _failure_reason(exc))
    else:
        loop.default_exception_handler(context)


async def run_until_signalled(
    config: ServerConfig, *, on_ready: Callable[[EchoServer], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then close every connection and return.

    Args:
        config: the server's configuration.
        on_ready: called once the server listens.

    Raises:
        CertificateError, ListenError: start-up failed.
    """
    import signal

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_exception_handler)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # handlers only enqueue
    try:
        server = EchoServer(config)
        await server.start()
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        log_main.info("closing server")
        await server.aclose()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
