"""A named set of servers started and stopped as one (``tlsecho badssl``,
``tlsecho lab``, the pytest fixtures), and an event loop in a thread for
running them inside a test process.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from tlsecho.logs import outcome_counts, plural

if TYPE_CHECKING:
    from tlsecho.server.core import EchoServer

__all__ = ["LoopThread", "ServerGroup"]

T = TypeVar("T")


class ServerGroup:
    """Servers that start together (all of them, or none: one that fails
    closes those already started), stop together and report as one."""

    def __init__(self, servers: Iterable[EchoServer]) -> None:
        self.servers = list(servers)

    async def start(self) -> None:
        """Start every server, in order.

        Raises:
            CertificateError, ListenError: one failed; the others are closed.
        """
        started: list[EchoServer] = []
        try:
            for srv in self.servers:
                await srv.start()
                started.append(srv)
        except BaseException:
            for srv in started:
                await srv.aclose()
            raise

    async def aclose(self) -> None:
        """Close every server (each drains and sends close_notify)."""
        for srv in self.servers:
            await srv.aclose()

    async def __aenter__(self) -> ServerGroup:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def summary(self) -> str:
        """``served 12 connections on 9 endpoints (handshake-failed=4, ...)``."""
        outcomes: collections.Counter[str] = collections.Counter()
        for srv in self.servers:
            outcomes.update(srv.outcomes)
        total = sum(srv.connections_total for srv in self.servers)
        endpoints = plural(len(self.servers), "endpoint")
        return f"served {plural(total, 'connection')} on {endpoints} ({outcome_counts(outcomes)})"

    async def run_until_signalled(self, show: Callable[[], None]) -> None:
        """With every server started: ``show()`` what they are, serve until
        SIGINT or SIGTERM, close them all and print :meth:`summary`."""
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            show()
            await stop.wait()
        finally:
            await self.aclose()
            print(self.summary(), flush=True)


class LoopThread:
    """An event loop running in a daemon thread of this process, for servers
    a synchronous caller (a pytest fixture) starts, uses and stops."""

    def __init__(self, name: str = "tlsecho-server") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(
        self, coro: Coroutine[Any, Any, T], timeout: float = 30.0, what: str = "the call"
    ) -> T:
        """Run ``coro`` on the thread's loop and return its result (or raise
        what it raised). After ``timeout`` seconds, ``TimeoutError`` saying
        that ``what`` did not finish in time."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"{what} did not finish within {timeout:g} s") from None

    def close(self, timeout: float = 30.0) -> None:
        """Stop the loop and the thread (close the servers first)."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()
