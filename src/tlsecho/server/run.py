"""Running a server in a process: the event loop, signals, the stop order."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tlsecho.config import ServerConfig
from tlsecho.errors import ConfigError, failure_reason, setting
from tlsecho.logs import get_logger
from tlsecho.server.core import EchoServer

__all__ = ["new_event_loop_factory", "run_on_loop", "run_until_signalled"]

log_main = get_logger("main")

T = TypeVar("T")


def new_event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop factory for ``--loop``: ``auto`` prefers uvloop when installed.

    Raises:
        ConfigError: ``uvloop`` asked for and not installed.
    """
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError(
                    f"{setting('loop')} uvloop: uvloop is not installed (pip install uvloop)"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on_loop(loop_name: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a new loop of that name."""
    with asyncio.Runner(loop_factory=new_event_loop_factory(loop_name)) as runner:
        return runner.run(coro)


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """One line for a peer's or the network's error; a traceback only for our bugs."""
    exc = context.get("exception")
    if isinstance(exc, OSError):  # ssl.SSLError included
        log_main.warning("%s: %s", context.get("message", "error"), failure_reason(exc))
    else:
        loop.default_exception_handler(context)


async def run_until_signalled(
    config: ServerConfig,
    *,
    on_ready: Callable[[EchoServer], None] | None = None,
    worker: int | None = None,
) -> EchoServer:
    """Serve until SIGINT or SIGTERM, then close every connection and return.

    Signal handlers only set an event or call a method on the loop; a second
    SIGINT/SIGTERM aborts the connections still open (in a worker: SIGUSR2,
    from the supervisor). SIGHUP reloads; SIGUSR1 flips mode http's ``/health``.

    Args:
        config: the server's configuration.
        on_ready: called once the server listens (before it logs so).
        worker: this process is worker number ``worker`` of several on the
            same port (SO_REUSEPORT; the supervisor serves the metrics).

    Returns:
        The server, closed (its ``outcomes`` and ``connections_total``).

    Raises:
        CertificateError, ListenError: start-up failed.
    """
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_exception_handler)
    stop = asyncio.Event()
    server = EchoServer(config, worker=worker, on_listening=on_ready)

    def close_now() -> None:
        log_main.info("second signal: closing every connection now")
        server.abort_all()
        stop.set()

    def on_stop_signal() -> None:
        if stop.is_set() and worker is None:
            close_now()
        stop.set()

    handlers: dict[signal.Signals, Callable[[], object]]
    if worker is None:
        handlers = {signal.SIGINT: on_stop_signal, signal.SIGTERM: on_stop_signal}
    else:
        # A terminal's Ctrl-C reaches every process of its group, and systemd
        # sends SIGTERM to every process of the unit: a worker leaves SIGINT
        # ignored, takes any number of SIGTERMs as one "drain", and closes
        # at once only when the supervisor says so (SIGUSR2, its second signal).
        handlers = {signal.SIGTERM: on_stop_signal, signal.SIGUSR2: close_now}
    handlers[signal.SIGHUP] = server.reload
    handlers[signal.SIGUSR1] = server.flip_health
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)  # runs on the loop, not in the handler
    try:
        await server.start()
        await stop.wait()
        log_main.info("closing server")
        await server.aclose(drain_timeout=config.drain_timeout)
    finally:
        if worker is not None:
            # Closed: a late signal must not kill the worker before it reports
            # (removing a handler restores the default action, SIGINT's
            # included); blocked signals are dropped when the process exits.
            signal.pthread_sigmask(signal.SIG_BLOCK, handlers.keys() | {signal.SIGINT})
        for sig in handlers:
            loop.remove_signal_handler(sig)
    return server
