"""Several server processes on one port (``tlsecho serve --workers N``).

The supervisor binds nothing that serves: it reserves each port 0 by binding
(not listening) a SO_REUSEPORT socket, so every worker can bind the same
port, then starts the workers, each with its own listening sockets; the
kernel spreads connections among them. It forwards SIGTERM, SIGINT and
SIGHUP (the first stop as SIGTERM, which workers take as "drain" however
many copies arrive; the second as SIGUSR2, "close now"), waits on the
workers' process sentinels (no polling), restarts a worker that dies
unexpectedly, and serves the workers' summed metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections import Counter
from typing import Any

from tlsecho.config import ServerConfig
from tlsecho.errors import TlsEchoError
from tlsecho.logs import configure, get_logger, outcome_counts, plural
from tlsecho.server.net import bind_all, format_address
from tlsecho.tls import build_server_tls, with_default_pair

__all__ = ["Supervisor", "run_workers"]

log = get_logger("main")


def _worker_main(
    config: ServerConfig, index: int, level: int, fmt: str, ready: Any, results: Any
) -> None:
    """A worker process: one server with SO_REUSEPORT sockets. ``ready`` (a
    multiprocessing Event) is set once it listens; what it served goes to
    ``results`` (a SimpleQueue) when it stops."""
    import asyncio

    from tlsecho.server.run import new_event_loop_factory, run_until_signalled

    # The group restriction (tlsecho.groups) is the parent's OPENSSL_CONF,
    # which this process inherited: nothing to do here.
    configure(level, fmt=fmt, label=f"worker{index}")
    # SIGINT from a terminal reaches the whole process group; the
    # supervisor forwards it, so a worker ignores its own copy. SIGUSR2 (the
    # supervisor's "close every connection now") is ignored until the
    # server can take it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    log.info("worker %d (pid %d) starting", index, os.getpid())
    try:
        with asyncio.Runner(loop_factory=new_event_loop_factory(config.loop)) as runner:
            server = runner.run(
                run_until_signalled(config, worker=index, on_ready=lambda _: ready.set())
            )
        outcomes = {str(k): v for k, v in server.outcomes.items()}
        results.put((server.connections_total, outcomes))
    except TlsEchoError as exc:
        print(f"tlsecho serve: worker {index}: error: {exc}", file=sys.stderr)
        sys.exit(1)


def _reserve_ports(config: ServerConfig) -> tuple[ServerConfig, list[socket.socket]]:
    """Reserve every port (port 0 becomes a real one) with bound, never
    listening, SO_REUSEPORT sockets: a port in use fails here, once.

    SO_REUSEPORT would let the workers join any server of this user that
    listens with it too (another ``tlsecho serve --workers``), silently
    taking part of its traffic; so each port is first bound without it,
    which fails, as a single server's bind does, when anyone listens there.
    """
    listen: list[tuple[str, int]] = []
    held: list[socket.socket] = []
    try:
        for host, port in config.endpoints:
            if port:
                for probe in bind_all(host, port, listen=False):
                    probe.close()
            socks = bind_all(host, port, reuse_port=True, listen=False)
            held += socks
            listen.append((host, socks[0].getsockname()[1]))
    except BaseException:
        for s in held:
            s.close()
        raise
    return dataclasses.replace(config, listen=tuple(listen)), held


class Supervisor:
    """Runs ``workers`` server processes on the same port and keeps them up.

    Signals only wake the wait on the workers' sentinels (``set_wakeup_fd``);
    the loop in :meth:`run` dispatches them: SIGHUP reloads every worker, the
    first SIGTERM/SIGINT drains them, a second stops them at once. A worker
    that exits before it listens failed at start-up and stops the whole
    server; one that exits later crashed and is replaced.
    """

    def __init__(self, config: ServerConfig, workers: int, log_format: str = "text") -> None:
        self.config = config
        self.workers = workers
        self.log_format = log_format
        self.level = logging.getLogger().getEffectiveLevel()
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: dict[int, Any] = {}
        # Set by each worker once it listens: one that exits before that failed
        # at start-up; one that exits after it crashed and is replaced. (A clock
        # cannot tell them apart: a worker killed a second after it started
        # was taken for a start-up failure.)
        self._ready: dict[int, Any] = {}
        self._results = self._ctx.SimpleQueue()  # each worker's counts, as it stops
        self.stopping = False
        self.status = 0

    def _start(self, index: int) -> None:
        self._ready[index] = self._ctx.Event()
        args = (self.config, index, self.level, self.log_format, self._ready[index], self._results)
        p = self._ctx.Process(target=_worker_main, args=args, daemon=False)
        p.start()
        self._procs[index] = p

    def _signal_all(self, signum: int) -> None:
        for p in self._procs.values():
            if p.is_alive():
                os.kill(p.pid, signum)

    def _stop_all(self) -> None:
        # The first stop drains (SIGTERM); the next closes every connection
        # now (SIGUSR2: a worker takes repeated SIGTERMs, which systemd may
        # send to every process of the unit, as one).
        self._signal_all(signal.SIGUSR2 if self.stopping else signal.SIGTERM)
        self.stopping = True

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            log.info("reloading every worker")
            self._signal_all(signal.SIGHUP)
            return
        if signum == signal.SIGUSR1:  # mode http: every worker's /health flips
            self._signal_all(signal.SIGUSR1)
            return
        # First: the workers drain; second: they stop at once.
        if not self.stopping:
            log.info("closing server: stopping %d workers", len(self._procs))
        self._stop_all()

    def _on_exit(self, index: int) -> None:
        p = self._procs.pop(index)
        p.join()
        if self.stopping:
            self.status = self.status or (1 if p.exitcode else 0)
        elif not self._ready[index].is_set():
            # Failing at start-up (port in use, bad certificate): the worker
            # said why; restarting would only repeat it.
            log.error("worker %d failed at start-up: stopping", index)
            self.status = 1
            self._stop_all()
        else:
            log.warning("worker %d exited with %s: restarting it", index, p.exitcode)
            self._start(index)

    def run(self, wakeup: socket.socket) -> int:
        """Start the workers and supervise them until they have all exited;
        ``wakeup`` receives the numbers of the signals that arrived."""
        for i in range(1, self.workers + 1):
            self._start(i)
        log.info("%d workers started", self.workers)
        while self._procs:
            sentinels = {p.sentinel: i for i, p in self._procs.items()}
            for obj in multiprocessing.connection.wait([*sentinels, wakeup]):
                if obj is wakeup:
                    for signum in wakeup.recv(64):
                        self._on_signal(signum)
                else:
                    self._on_exit(sentinels[obj])
        self._log_total()
        return self.status

    def _log_total(self) -> None:
        """One summary for the whole server: the workers' own, summed."""
        total, outcomes, reports = 0, Counter[str](), 0
        while not self._results.empty():
            served, counts = self._results.get()
            total += served
            outcomes.update(counts)
            reports += 1
        done = outcome_counts(outcomes)
        log.info(
            "served %s in all, %s (%s)",
            plural(total, "connection"),
            plural(reports, "worker run"),
            done,
        )


def run_workers(config: ServerConfig, workers: int, log_format: str = "text") -> int:
    """Run ``workers`` server processes until SIGTERM/SIGINT; return the exit status.

    Workers log at this process's level, in ``log_format`` (``text`` or ``json``).

    Raises:
        CertificateError, ListenError: start-up failed.
    """
    config, _ = with_default_pair(config)  # once, before the workers race for it
    build_server_tls(config)  # a bad certificate or policy: one error, here
    config, held = _reserve_ports(config)
    metrics_dir = None
    if config.metrics is not None:
        metrics_dir = tempfile.mkdtemp(prefix="tlsecho-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # Signals only wake the wait (set_wakeup_fd); the supervisor dispatches them.
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    old_fd = signal.set_wakeup_fd(wsock.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, lambda *_: None)
    try:
        supervisor = Supervisor(config, workers, log_format)
        if config.metrics is not None and metrics_dir is not None:
            from tlsecho.server.metrics import serve_multiprocess

            where = serve_multiprocess(*config.metrics, metrics_dir)
            log.info("metrics on http://%s/metrics (all workers)", format_address(where))
        return supervisor.run(rsock)
    finally:
        signal.set_wakeup_fd(old_fd)
        for s in held:
            s.close()
        rsock.close()
        wsock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
