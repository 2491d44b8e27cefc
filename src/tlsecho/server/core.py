"""The TLS echo server as a library object: listeners, accept, limits and
the ordered shutdown. One :class:`~tlsecho.server.connection.TlsConnection` per
client does the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tlsecho.config import ServerConfig
from tlsecho.errors import ListenError, TlsEchoError
from tlsecho.logs import get_logger, outcome_counts, plural
from tlsecho.server.connection import ConnectionRecord, Outcome
from tlsecho.server.engines.base import EngineConnection
from tlsecho.server.engines.membio import BioTlsConnection
from tlsecho.server.engines.sslsocket import TlsConnection
from tlsecho.server.identity import Policy
from tlsecho.server.net import Address, bind_all, default_max_connections, format_address
from tlsecho.tls import ServerTLS, build_server_tls, with_default_pair
from tlsecho.wire.deadlines import Limits

__all__ = ["EchoServer", "serve"]

log_main = get_logger("main")

_ACCEPTS_PER_WAKEUP = 64
_ACCEPT_RETRY_DELAY = 0.1
# How long a refused handshake waits for the peer to read the alert and close.
_LINGER = 1.0


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
        self,
        config: ServerConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        name: str | None = None,
        worker: int | None = None,
        on_listening: Callable[[EchoServer], None] | None = None,
    ) -> None:
        """``name``: this listener's name among several (an endpoint of
        ``badssl`` or ``lab``). ``worker``: this server is worker N of
        ``serve --workers`` (it binds with SO_REUSEPORT and leaves
        ``/metrics`` to the supervisor). ``on_listening``: called once
        :meth:`start` has everything ready."""
        self.config = config or ServerConfig()
        self._given_ctx = ssl_context
        self._tls: ServerTLS | None = None
        self._listeners: list[socket.socket] = []
        self._conns: set[EngineConnection] = set()
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
        cfg = self.config
        open_limits = [t for t in (cfg.idle_timeout, cfg.max_session) if t]
        self._sweep_every = min(1.0, max(0.05, min(open_limits) / 10)) if open_limits else None
        self._limits = Limits(
            handshake=cfg.handshake_timeout,
            idle=cfg.idle_timeout,
            session=cfg.max_session,
            close=cfg.shutdown_timeout,
            linger=_LINGER,
        )
        self._policy = Policy(
            allow_cn=cfg.allow_cn,
            allow_ou=cfg.allow_ou,
            allow_dns=cfg.allow_dns,
            allow_uri=cfg.allow_uri,
            allow_spki_pin=cfg.allow_spki_pin,
        )
        self._sweep: asyncio.TimerHandle | None = None
        self.closing = False
        """True once :meth:`aclose` has begun (no more accepting)."""
        self.hard_closing = False
        """True once open sessions are being closed (after the drain)."""
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.on_record: list[Callable[[ConnectionRecord], None]] = []
        """Called with each finished connection's record (the pytest
        plugin collects ClientHellos this way)."""
        """Finished connections by how they ended (``terminated``, ``eof``, ...)."""
        self.addresses: list[Address] = []
        """The bound addresses, after :meth:`start`."""
        self.connections_total = 0
        """Connections accepted so far."""
        self.reloads = 0
        """Successful reloads so far."""
        self.metrics: Any = None
        """A metrics sink with ``connection_done(fields)`` (see :mod:`tlsecho.server.metrics`)."""
        self.metrics_address: Address | None = None
        """Where ``/metrics`` is served, with ``config.metrics``."""
        self.worker = worker
        """Which worker of ``serve --workers`` this is (None: the only server)."""
        self.reuse_port = worker is not None
        """Bind with SO_REUSEPORT (a worker shares its port with the others)."""
        self.serve_metrics = worker is None
        """Serve ``/metrics`` itself (workers leave it to the supervisor)."""
        self.on_listening = on_listening
        """Called once :meth:`start` has everything ready, just before it logs
        ``listening on`` (the worker supervisor's readiness signal)."""
        self.health: Any = None
        """Mode ``http``: what ``/health`` answers (a :class:`tlsecho.tlsbin.Health`)."""
        self._conn_class: type[EngineConnection] = (
            BioTlsConnection if cfg.engine == "membio" else TlsConnection
        )
        if cfg.mode == "http":  # h11 and h2 load only for it
            from tlsecho.server.engines.http import HttpBioConnection, HttpConnection
            from tlsecho.tlsbin import Health

            self.health = Health()
            self._conn_class = HttpBioConnection if cfg.engine == "membio" else HttpConnection
        self.name = name
        """This listener's name among several (``tlsecho badssl``'s endpoints),
        named in each connection's record."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the server runs on (after :meth:`start`)."""
        assert self._loop is not None, "server not started"
        return self._loop

    @property
    def limits(self) -> Limits:
        """The deadlines every connection keeps (from the configuration)."""
        return self._limits

    @property
    def policy(self) -> Policy:
        """Which client identities are admitted (the ``--allow-*`` options)."""
        return self._policy

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
            self.config, created = with_default_pair(cfg)
            log_main.info(
                "%s default certificate %s (clients trust it by default)",
                "created" if created else "using",
                self.config.cert,
            )

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
                self._listeners += bind_all(host, port, reuse_port=self.reuse_port)
        except BaseException:
            for s in self._listeners:
                s.close()
            self._listeners = []
            raise
        self.addresses = [s.getsockname()[:2] for s in self._listeners]
        self._start_accepting()
        if cfg.metrics is not None:
            from tlsecho.server.metrics import Metrics

            self.metrics = Metrics(active=lambda: len(self._conns))
            if self.serve_metrics:
                self._serve_metrics(cfg.metrics)
        if cfg.reload_interval is not None and self._given_ctx is None:
            self._watch = self._watched_files()
            self._watch_timer = self.loop.call_later(cfg.reload_interval, self._poll_files)
        if self.on_listening is not None:
            self.on_listening(self)  # before the line: a supervisor knows first
        # Last: whoever waits for this line finds everything ready.
        log_main.info("listening on %s", ", ".join(format_address(a) for a in self.addresses))

    def _serve_metrics(self, where: Address) -> None:
        try:
            self.metrics_address = self.metrics.serve(*where)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise ListenError(
                f"cannot serve metrics on {format_address(where)}: {reason}"
            ) from None
        log_main.info("metrics on http://%s/metrics", format_address(self.metrics_address))

    # -- reload ---------------------------------------------------------------
    def flip_health(self) -> None:
        """Mode ``http``: ``/health`` answers the other way (SIGUSR1)."""
        if self.health is None:
            log_main.warning("SIGUSR1 ignored: /health is --mode http's")
            return
        log_main.info("health: %s", "ok" if self.health.flip() else "failing")

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
            conn = self._conn_class(self, sock, (str(addr[0]), int(addr[1])))
            self._conns.add(conn)
            conn.guard(conn.start)

    def _resume_accepting(self) -> None:
        if not self.closing:
            self._start_accepting()

    def watch_deadlines(self) -> None:
        """A session opened: make sure the sweep runs."""
        if self._sweep is None and self._sweep_every is not None:
            self._sweep = self.loop.call_later(self._sweep_every, self._sweep_open)

    def _sweep_open(self) -> None:
        self._sweep = None
        now = self.loop.time()
        still_open = False
        for conn in list(self._conns):
            if conn.guard(conn.check_deadlines, now):
                still_open = True
        if still_open:
            self.watch_deadlines()

    def forget(self, conn: EngineConnection) -> None:
        """A connection whose own end failed (an internal error while it
        closed): it is gone, counted as an internal error, with no record
        (unless the server has already had it: then nothing more)."""
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self.outcomes[Outcome.INTERNAL_ERROR] += 1
        if self.metrics is not None:
            self.metrics.connection_closed()
            self.metrics.internal_errors.inc()
        if not self._conns:
            self._idle.set()

    def connection_lost(self, conn: EngineConnection, record: ConnectionRecord) -> None:
        """Called once per connection, when it has closed, with its record."""
        self._conns.discard(conn)
        self.outcomes[record.outcome] += 1
        for listener in self.on_record:
            listener(record)
        if self.metrics is not None:
            self.metrics.connection_closed()
            self.metrics.connection_done(record)
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
            log_main.info(
                "draining %s for up to %g s", plural(len(self._conns), "connection"), drain_timeout
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await self._idle.wait()
        self.hard_closing = True
        for conn in list(self._conns):
            conn.guard(conn.close)
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                await self._idle.wait()
        except TimeoutError:
            self.abort_all()
        log_main.info(
            "served %s (%s)",
            plural(self.connections_total, "connection"),
            outcome_counts(self.outcomes),
        )

    def abort_all(self) -> None:
        """Drop every connection now, without close_notify."""
        self.hard_closing = True
        for conn in list(self._conns):
            conn.guard(conn.abort)

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
