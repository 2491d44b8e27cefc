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
import dataclasses
import enum
import errno
import logging
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tlsecho.certs import ensure_default_pair
from tlsecho.config import ServerConfig
from tlsecho.errors import ConfigError, ListenError, TlsEchoError
from tlsecho.framing import Framing, make_framing
from tlsecho.logs import get_logger
from tlsecho.proxy_protocol import ProxyHeader, ProxyParser, ProxyProtocolError
from tlsecho.tls import ServerTLS, build_server_tls, describe_certificate, server_name_of

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
# How long a refused handshake waits for the peer to read the alert and close.
_LINGER = 1.0
_ACCEPT_RETRY_DELAY = 0.1
# A PROXY header is read with MSG_PEEK so the ClientHello after it stays in
# the socket for OpenSSL; a v2 header longer than this is read in steps.
_PROXY_PEEK = 4096


def format_address(addr: Address) -> str:
    """``127.0.0.1:10000`` or ``[::1]:10000``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _failure_reason(exc: BaseException | None) -> str:
    """A short, stable phrase for why a connection ended badly."""
    if exc is None:
        return "closed"
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or exc.__class__.__name__).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.errno is not None:
        if isinstance(exc, ConnectionResetError):
            return "reset by peer"
        if isinstance(exc, BrokenPipeError):
            return "broken pipe"
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    # Our own exceptions (PROXY errors, timeouts) carry a readable message.
    return str(exc) or exc.__class__.__name__


class _State(enum.Enum):
    PROXY = "proxy"  # reading the PROXY header, before TLS
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
        "_deadline",
        "_debug",
        "_fd",
        "_framing",
        "_io",
        "_last_io",
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
        "_started",
        "_state",
        "_timer",
        "_wbuf",
        "_writing",
        "_written",
        "_wsize",
        "alpn",
        "cipher",
        "client_cert",
        "peer",
        "real_peer",
        "sni",
        "version",
    )

    def __init__(self, server: EchoServer, sock: socket.socket, peer: Address) -> None:
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
        self._framing: Framing = make_framing(cfg.mode, max_line=cfg.max_line)
        self._proxy = ProxyParser(cfg.proxy_protocol) if cfg.proxy_protocol != "off" else None
        self._state = _State.PROXY if self._proxy else _State.HANDSHAKE
        self._outcome: str | None = None
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
        self._started = self._last_io = self._loop.time()
        self._deadline: float | None = None
        self._linger_exc: BaseException | None = None
        # The handshake timeout also bounds the PROXY header: absolute, so
        # dripping bytes cannot extend it.
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            cfg.handshake_timeout, self._on_timeout
        )
        self._debug = log_conn.isEnabledFor(logging.DEBUG)
        self.peer = peer
        """The client's address: the PROXY header's source when there is one."""
        self.real_peer = peer
        """The address the TCP connection came from (the proxy, if any)."""
        self.version = self.cipher = self.alpn = self.sni = "-"
        self.client_cert: str | None = None
        """The client certificate's subject, when one was presented."""

    @property
    def tag(self) -> str:
        """The log lines' prefix: made when needed, not held by idle connections."""
        return f"echo_{self.peer[0]}_{self.peer[1]}"

    def start(self) -> None:
        """Begin (the server has registered the connection)."""
        if self._state is _State.PROXY:
            self._want_read(True)
        else:
            self._wrap()

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
        elif state is _State.PROXY:
            self._read_proxy_header()

    def _on_writable(self) -> None:
        state = self._state
        if state is _State.HANDSHAKE:
            self._handshake()
        elif state is _State.OPEN or state is _State.CLOSING:
            self._flush()

    # -- PROXY header -----------------------------------------------------------
    def _read_proxy_header(self) -> None:
        assert self._proxy is not None
        try:
            data = self._raw.recv(_PROXY_PEEK, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._outcome = "proxy-error"
            self._close(exc)
            return
        if not data:
            self._outcome = "proxy-error"
            self._close(ConnectionResetError("closed before the end of the PROXY header"))
            return
        try:
            used = self._proxy.feed(data)
        except ProxyProtocolError as exc:
            self._outcome = "proxy-error"
            self._close(exc)
            return
        # Take exactly the header's bytes off the socket; what follows (the
        # ClientHello) stays there for OpenSSL. Incomplete: all of it is header.
        self._raw.recv(used)
        header = self._proxy.header
        if header is not None:
            self._apply_proxy_header(header)
            self._wrap()

    def _apply_proxy_header(self, header: ProxyHeader) -> None:
        if header.command == "PROXY" and header.source is not None and header.family != "UNIX":
            self.peer = header.source
        if self._debug:
            src = format_address(header.source) if header.source else "-"
            tlvs = header.tlv_summary()
            log_conn.debug(
                "PROXY v%d %s %s from %s via %s%s",
                header.version,
                header.command,
                header.family,
                src,
                format_address(self.real_peer),
                f" tlvs={tlvs}" if tlvs else "",
                extra={"tag": self.tag},
            )

    # -- handshake ------------------------------------------------------------
    def _wrap(self) -> None:
        self._state = _State.HANDSHAKE
        try:
            # Ragged EOFs raise, so a close without close_notify is told
            # apart from a clean end of stream in the log.
            self._sock = self._server.tls.context.wrap_socket(
                self._raw,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=False,
            )
        except OSError as exc:
            self._outcome = "handshake-failed"
            self._close(exc)
            return
        # The wrapped socket owns the descriptor now (wrap_socket detached the
        # plain one): shutdown() in _linger() must go through it.
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
            self._outcome = "handshake-failed"
            self.sni = server_name_of(sock) or "-"
            if isinstance(exc, ssl.SSLError):
                self._linger(exc)
            else:
                self._close(exc)
            return
        self._cancel_timer()
        self._state = _State.OPEN
        cfg = self._server.config
        self._last_io = now = self._loop.time()
        if cfg.max_session is not None:
            self._deadline = now + cfg.max_session
        self._server.watch_deadlines()
        # Interned: a handful of distinct values, held by every open connection.
        self.version = sys.intern(sock.version() or "-")
        cipher = sock.cipher()
        self.cipher = sys.intern(cipher[0]) if cipher else "-"
        self.alpn = sock.selected_alpn_protocol() or "-"
        self.sni = server_name_of(sock) or "-"
        metrics = self._server.metrics
        if metrics is not None:
            metrics.handshake_done(self.version, self.cipher, now - self._started)
        if self._debug:
            log_conn.debug("connection accepted", extra={"tag": self.tag})
        if cfg.client_auth != "none":
            self._log_client_certificate(sock)
        self._want_write(False)
        self._want_read(True)
        if cfg.alpn_required and self.alpn == "-":
            # Python cannot fail the handshake from the ALPN callback, so the
            # refusal comes right after it: no echo, close_notify, one line.
            self._outcome = "alpn-refused"
            self._begin_close()
        elif self._server.hard_closing:
            self.close()
        else:
            self._read()

    def _log_client_certificate(self, sock: ssl.SSLSocket) -> None:
        der = sock.getpeercert(binary_form=True)
        if not der:
            log_conn.info("no client certificate", extra={"tag": self.tag})
            return
        c = describe_certificate(der)
        self.client_cert = c.subject
        log_conn.info(
            "client certificate subject=%r issuer=%r serial=%s sha256=%s",
            c.subject,
            c.issuer,
            c.serial,
            c.sha256,
            extra={"tag": self.tag},
        )

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
            self._last_io = self._loop.time()
            echo = framing.receive_data(data)
            if self._debug:
                log_conn.debug("received %r", data, extra={"tag": self.tag})
            if echo:
                self._write(echo)
                if self._debug:
                    log_conn.debug("sent %r", echo, extra={"tag": self.tag})
                if self._state is not _State.OPEN:
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
            self._last_io = self._loop.time()
            if n < len(data):
                wbuf[0] = data[n:]
                continue
            del wbuf[0]
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
        framing = self._framing
        error = getattr(framing, "error", None)
        if error is not None:
            self._outcome = "framing-error"
            log_conn.info("%s: closing connection", error, extra={"tag": self.tag})
        elif framing.terminated:
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
        if self._state is not _State.OPEN:
            return  # already closing or closed
        self._state = _State.CLOSING
        self._cancel_timer()
        self._timer = self._loop.call_later(self._server.config.shutdown_timeout, self._on_timeout)
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

    def _linger(self, exc: BaseException) -> None:
        """After a refused handshake, let the peer read our alert.

        A TLS 1.3 client sends data right behind its Finished, before we
        judge its certificate; closing with that data unread would send a
        TCP reset, which destroys the alert in the client's buffers. So: FIN,
        then read and discard until the peer closes, for a second at most.
        """
        self._linger_exc = exc
        self._cancel_timer()
        self._state = _State.DRAINING
        self._want_write(False)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._raw, socket.SHUT_WR)
        self._timer = self._loop.call_later(
            min(_LINGER, self._server.config.shutdown_timeout), self._on_timeout
        )
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

    def check_deadlines(self, now: float, idle: float | None) -> bool:
        """Close an open session past its idle timeout or session limit (the
        server's sweep calls this: no timer per open connection). True if the
        connection is still open."""
        if self._state is not _State.OPEN:
            return False
        if self._deadline is not None and now >= self._deadline:
            self._outcome = "session-timeout"
        elif idle is not None and now - self._last_io >= idle:
            self._outcome = "idle-timeout"
        else:
            return True
        log_conn.info("%s: closing connection", self._outcome, extra={"tag": self.tag})
        self._begin_close()
        return False

    def _on_timeout(self) -> None:
        self._timer = None
        if self._state is _State.HANDSHAKE or self._state is _State.PROXY:
            stage = "PROXY header" if self._state is _State.PROXY else "handshake"
            self._outcome = "proxy-error" if self._state is _State.PROXY else "handshake-failed"
            self._close(TimeoutError(f"{stage} timed out"))
        elif self._state is _State.CLOSING or self._state is _State.DRAINING:
            # The peer does not take its echo or does not close: give up.
            self._close(self._linger_exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Close for server shutdown: flush, close_notify, close."""
        if self._state is _State.HANDSHAKE or self._state is _State.PROXY:
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
        (self._sock or self._raw).close()
        outcome = self._outcome
        if outcome is None:
            outcome = "eof" if exc is None else "error"
        self._server._connection_lost(self, outcome)
        f = self._framing
        duration = self._loop.time() - self._started
        reason_text = _failure_reason(exc) if exc is not None else None
        if self._ragged and reason_text is None:
            reason_text = "closed without close_notify"
        if self._written < f.bytes_out and reason_text is None:
            # The log says what really went out, never what was meant to.
            reason_text = f"echo cut short: {f.bytes_out - self._written} bytes not sent"
        proxied = self.peer != self.real_peer
        fields = {
            "event": "connection",
            "peer": format_address(self.peer),
            "via": format_address(self.real_peer) if proxied else None,
            "tls_version": None if self.version == "-" else self.version,
            "cipher": None if self.cipher == "-" else self.cipher,
            "sni": None if self.sni == "-" else self.sni,
            "alpn": None if self.alpn == "-" else self.alpn,
            "client_cert": self.client_cert,
            "bytes_in": f.bytes_in,
            "bytes_out": self._written,
            "discarded": f.discarded,
            "duration_s": round(duration, 6),
            "outcome": outcome,
            "reason": reason_text,
        }
        log_conn.info(
            "done peer=%s%s tls=%s cipher=%s sni=%s alpn=%s in=%d out=%d discarded=%d "
            "duration=%.3fs end=%s%s",
            fields["peer"],
            f" via={fields['via']}" if proxied else "",
            self.version,
            self.cipher,
            self.sni,
            self.alpn,
            f.bytes_in,
            self._written,
            f.discarded,
            duration,
            outcome,
            f" reason={reason_text!r}" if reason_text else "",
            extra={"tag": self.tag, "fields": fields},
        )
        self._server._connection_done(self, fields)


def default_max_connections() -> int:
    """The file-descriptor limit, less room for listeners, logs and files."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, soft - 64)


def raise_fd_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one; return it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


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


def _bind(
    host: str, port: int, *, reuse_port: bool = False, listen: bool = True
) -> list[socket.socket]:
    """Bind every address ``host`` resolves to, all on one port.

    With ``reuse_port``, several processes bind the same port and the
    kernel spreads connections among their listening sockets (SO_REUSEPORT).
    """
    socks: list[socket.socket] = []
    try:
        for family, sockaddr in _resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
            if listen:
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
        config: how to listen, what to present and what to echo.
        ssl_context: a ready server context, used instead of the one built
            from ``config`` (no reload then).
    """

    def __init__(
        self, config: ServerConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config or ServerConfig()
        self._given_ctx = ssl_context
        self._tls: ServerTLS | None = None
        self._listeners: list[socket.socket] = []
        self._conns: set[_TlsConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accept_paused = False
        self._full = False
        self._max_conns = self.config.max_connections or default_max_connections()
        self._watch: tuple[tuple[str, int, int], ...] = ()
        self._watch_timer: asyncio.TimerHandle | None = None
        # Idle timeouts and session limits are checked by one sweep over the
        # open connections, not a timer each: a timer costs ~0.4 KiB per idle
        # connection (on uvloop) and a call_later per connection. The sweep
        # runs every tenth of the shortest limit (0.05 s to 1 s), so a limit
        # fires that much late at most.
        limits = [t for t in (self.config.idle_timeout, self.config.max_session) if t]
        self._sweep_every = min(1.0, max(0.05, min(limits) / 10)) if limits else None
        self._sweep: asyncio.TimerHandle | None = None
        self.closing = False
        """True once :meth:`aclose` has begun (no more accepting)."""
        self.hard_closing = False
        """True once open sessions are being closed (after the drain)."""
        self.outcomes: collections.Counter[str] = collections.Counter()
        """Finished connections by how they ended (``terminated``, ``eof``, ...)."""
        self.addresses: list[Address] = []
        """The bound addresses, after :meth:`start`."""
        self.connections_total = 0
        """Connections accepted so far."""
        self.reloads = 0
        """Successful reloads so far."""
        self.metrics: Any = None
        """A metrics sink with ``connection_done(fields)`` (see :mod:`tlsecho.metrics`)."""
        self.metrics_address: Address | None = None
        """Where ``/metrics`` is served, with ``config.metrics``."""
        self.reuse_port = False
        """Bind with SO_REUSEPORT (set by the worker supervisor)."""
        self.serve_metrics = True
        """Serve ``/metrics`` itself (workers leave it to the supervisor)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on (after :meth:`start`)."""
        assert self._loop is not None, "server not started"
        return self._loop

    @property
    def tls(self) -> ServerTLS:
        """The current TLS contexts (replaced by :meth:`reload`)."""
        assert self._tls is not None, "server not started"
        return self._tls

    @property
    def cert_path(self) -> Path | None:
        """The default certificate presented (after :meth:`start`)."""
        return self._tls.cert_path if self._tls else self.config.cert

    @property
    def port(self) -> int:
        """The first bound port (with one ``host``, the same on every address)."""
        return self.addresses[0][1]

    @property
    def connections_open(self) -> int:
        """Connections open now, handshaking ones included."""
        return len(self._conns)

    def _resolve_default_pair(self) -> None:
        cfg = self.config
        if cfg.cert is None and self._given_ctx is None:
            pair, created = ensure_default_pair()
            log_main.info(
                "%s default certificate %s (clients trust it by default)",
                "created" if created else "using",
                pair.cert,
            )
            self.config = dataclasses.replace(cfg, cert=pair.cert, key=pair.key)

    def _build_tls(self) -> ServerTLS:
        if self._given_ctx is not None:
            return ServerTLS(self._given_ctx, None, "-")
        return build_server_tls(self.config)

    async def start(self) -> None:
        """Load the certificates and start listening.

        Raises:
            CertificateError: a certificate or key is unusable.
            ConfigError: an impossible TLS policy.
            ListenError: cannot resolve or bind.
        """
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._resolve_default_pair()
        self._tls = self._build_tls()
        for host, port in cfg.endpoints:
            log_main.info("starting up on %s port %s", host, port)
        try:
            for host, port in cfg.endpoints:
                self._listeners += _bind(host, port, reuse_port=self.reuse_port)
        except BaseException:
            for s in self._listeners:
                s.close()
            self._listeners = []
            raise
        self.addresses = [s.getsockname()[:2] for s in self._listeners]
        self._start_accepting()
        log_main.info("listening on %s", ", ".join(format_address(a) for a in self.addresses))
        if cfg.metrics is not None:
            from tlsecho.metrics import Metrics

            self.metrics = Metrics(active=lambda: len(self._conns))
            if not self.serve_metrics:
                return
            try:
                where = self.metrics.serve(*cfg.metrics)
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise ListenError(
                    f"cannot serve metrics on {format_address(cfg.metrics)}: {reason}"
                ) from None
            self.metrics_address = where
            log_main.info("metrics on http://%s/metrics", format_address(where))
        if cfg.reload_interval is not None and self._given_ctx is None:
            self._watch = self._watched_files()
            self._watch_timer = self.loop.call_later(cfg.reload_interval, self._poll_files)

    # -- reload ---------------------------------------------------------------
    def reload(self) -> bool:
        """Load the certificate, key, client CA and SNI files again.

        New connections get the new contexts; open ones continue untouched.
        A broken file keeps the current contexts and logs one line.

        Returns:
            Whether the new files were taken.
        """
        if self._given_ctx is not None:
            log_main.warning("reload skipped: the server was given an SSLContext")
            return False
        try:
            tls = build_server_tls(self.config)
        except TlsEchoError as exc:
            log_main.error("reload failed, keeping the current certificates: %s", exc)
            if self.metrics is not None:
                self.metrics.reload(False)
            return False
        self._tls = tls
        self.reloads += 1
        if self.metrics is not None:
            self.metrics.reload(True)
        log_main.info("reloaded certificate %s sha256=%s", tls.cert_path, tls.fingerprint)
        return True

    def _watched_files(self) -> tuple[tuple[str, int, int], ...]:
        cfg = self.config
        paths = [cfg.cert, cfg.key, cfg.client_ca]
        for sni in cfg.sni:
            paths += [sni.cert, sni.key]
        out = []
        for p in paths:
            if p is None:
                continue
            try:
                st = p.stat()
            except OSError:
                out.append((str(p), -1, -1))
            else:
                out.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _poll_files(self) -> None:
        assert self.config.reload_interval is not None
        if self.closing:
            return
        current = self._watched_files()
        if current != self._watch:
            self._watch = current
            log_main.info("certificate files changed: reloading")
            self.reload()
        self._watch_timer = self.loop.call_later(self.config.reload_interval, self._poll_files)

    # -- accepting ------------------------------------------------------------
    def _start_accepting(self) -> None:
        for lsock in self._listeners:
            self.loop.add_reader(lsock.fileno(), self._accept, lsock)

    def _stop_accepting(self) -> None:
        for lsock in self._listeners:
            self.loop.remove_reader(lsock.fileno())

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            if len(self._conns) >= self._max_conns:
                # At the limit: stop accepting (the kernel's backlog holds
                # the newcomers) until a connection closes; no accept-and-drop.
                if not self._full:
                    log_main.warning(
                        "at --max-connections %d: not accepting until a connection closes",
                        self._max_conns,
                    )
                self._full = True
                self._stop_accepting()
                return
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: pause accepting briefly instead of
                    # spinning; the backlog keeps the waiting clients.
                    if not self._accept_paused:  # once per burst
                        log_main.warning(
                            "accept paused for %.0f ms: %s",
                            _ACCEPT_RETRY_DELAY * 1e3,
                            os.strerror(exc.errno),
                        )
                    self._accept_paused = True
                    self._stop_accepting()
                    self.loop.call_later(_ACCEPT_RETRY_DELAY, self._resume_accepting)
                    return
                raise
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                sock.close()  # reset before we could look at it
                continue
            self._accept_paused = False
            self.connections_total += 1
            self._idle.clear()
            if self.metrics is not None:
                self.metrics.connection_opened()
            conn = _TlsConnection(self, sock, (str(addr[0]), int(addr[1])))
            self._conns.add(conn)
            conn.start()

    def _resume_accepting(self) -> None:
        if not self.closing:
            self._start_accepting()

    def _connection_done(self, conn: _TlsConnection, fields: dict[str, Any]) -> None:
        """Called once per connection with what its log line says."""
        if self.metrics is not None:
            self.metrics.connection_done(fields)

    def watch_deadlines(self) -> None:
        """A session opened: make sure the sweep runs."""
        if self._sweep is None and self._sweep_every is not None:
            self._sweep = self.loop.call_later(self._sweep_every, self._sweep_open)

    def _sweep_open(self) -> None:
        self._sweep = None
        now = self.loop.time()
        idle = self.config.idle_timeout
        still_open = False
        for conn in list(self._conns):
            if conn.check_deadlines(now, idle):
                still_open = True
        if still_open:
            self.watch_deadlines()

    def _connection_lost(self, conn: _TlsConnection, outcome: str) -> None:
        self._conns.discard(conn)
        self.outcomes[outcome] += 1
        if self.metrics is not None:
            self.metrics.connection_closed()
        if self._full and len(self._conns) < self._max_conns and not self.closing:
            self._full = False
            self._start_accepting()
        if not self._conns:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no connection is open (handshaking ones included)."""
        await self._idle.wait()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        await asyncio.Event().wait()

    async def aclose(self, drain_timeout: float = 0.0) -> None:
        """Shut down in order: stop accepting; let open sessions finish for up
        to ``drain_timeout`` seconds; close the rest with close_notify (after
        flushing their echo); abort what is still open after
        ``config.shutdown_timeout``.
        """
        if self.closing:
            return
        self.closing = True
        if self._loop is None:
            return
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        self._stop_accepting()
        for lsock in self._listeners:
            lsock.close()
        if drain_timeout > 0 and self._conns and not self.hard_closing:
            log_main.info("draining %d connections for up to %g s", len(self._conns), drain_timeout)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await self._idle.wait()
        self.hard_closing = True
        for conn in list(self._conns):
            conn.close()
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                await self._idle.wait()
        except TimeoutError:
            self.abort_all()
        done = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        log_main.info("served %d connections (%s)", self.connections_total, done or "none")

    def abort_all(self) -> None:
        """Drop every connection now, without close_notify."""
        self.hard_closing = True
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
    config: ServerConfig,
    *,
    on_ready: Callable[[EchoServer], None] | None = None,
    worker: bool = False,
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
    server = EchoServer(config)
    if worker:
        server.reuse_port = True
        server.serve_metrics = False

    def on_stop_signal() -> None:
        if stop.is_set():
            log_main.info("second signal: closing every connection now")
            server.abort_all()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop_signal)  # runs on the loop, not in the handler
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    try:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        log_main.info("closing server")
        await server.aclose(drain_timeout=config.drain_timeout)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
