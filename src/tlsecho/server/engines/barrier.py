"""The error barrier every engine step runs behind (fail closed): an
exception of ours ends that one connection at once, with an alert or a reset,
one line and a count, and never lets it carry on past a policy check.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from tlsecho.logs import get_logger
from tlsecho.server.connection import ConnectionOwner, Outcome, State
from tlsecho.server.net import Address, format_address
from tlsecho.wire.faults import alert_record

__all__ = ["DRAINS_PER_WAKEUP", "DRAIN_SIZE", "LINGER_ZERO", "ErrorBarrier"]

log_conn = get_logger("echo")

DRAIN_SIZE = 65536
LINGER_ZERO = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: close resets
DRAINS_PER_WAKEUP = 16
# A fatal internal_error alert (RFC 8446 6.2) in a plaintext record: what a
# client is told when our own code fails before any TLS record of ours went out.
_ALERT_INTERNAL_ERROR = alert_record(80)

_T = TypeVar("_T")


class ErrorBarrier:
    """The engine connection's error barrier (a base of
    :class:`~tlsecho.server.engines.base.EngineConnection`, whose attributes
    it uses)."""

    # The attributes the barrier touches are slots of this class.
    __slots__ = (
        "_fd",
        "_ftimer",
        "_logged",
        "_loop",
        "_outcome",
        "_raw",
        "_reading",
        "_server",
        "_sock",
        "_state",
        "_timer",
        "_writing",
        "peer",
    )
    _server: ConnectionOwner
    _loop: asyncio.AbstractEventLoop
    _raw: Any
    _sock: Any
    _fd: int
    _state: State
    _outcome: Outcome | None
    _reading: bool
    _writing: bool
    _timer: asyncio.TimerHandle | None
    _ftimer: asyncio.TimerHandle | None
    _logged: bool
    peer: Address

    @property
    def tag(self) -> str:
        raise NotImplementedError

    def _close(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def guard(self, step: Callable[..., _T], *args: Any) -> _T | None:
        """Run one step of this connection (every loop callback, timer and
        server call goes through here). An exception that escapes it is not
        a peer's documented mistake (those are handled where they happen) but
        a fault of ours: it ends this connection at once (fail closed), and
        nothing else."""
        try:
            return step(*args)
        except Exception as exc:
            self._internal_error(exc)
            return None

    def _internal_error(self, exc: Exception) -> None:
        """Fail closed: whatever the connection was doing, a policy check
        included, it ends now and never carries on. Before any TLS record
        of ours went out the client gets a fatal ``internal_error`` alert;
        after, a TCP reset (so it can never take the end for a clean one).
        One line (``end=internal-error``), counted; the traceback only at
        debug level and in the JSON record."""
        self._outcome = Outcome.INTERNAL_ERROR
        if self._state is State.CLOSED:  # it failed while closing
            self._abandon(exc)
            return
        try:
            raw = self._raw
            if self._sock is None:
                # What the client sent is read and dropped first: closing with
                # unread bytes would reset, destroying the alert on its way.
                with contextlib.suppress(OSError):
                    for _ in range(DRAINS_PER_WAKEUP):  # bounded: a flood cannot hold us
                        if not socket.socket.recv(raw, DRAIN_SIZE, socket.MSG_DONTWAIT):
                            break
                with contextlib.suppress(OSError):
                    socket.socket.send(raw, _ALERT_INTERNAL_ERROR, socket.MSG_DONTWAIT)
            else:
                with contextlib.suppress(OSError):
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
            self._close(exc)
        except Exception:
            self._abandon(exc)

    def _abandon(self, exc: Exception) -> None:
        """The end itself failed: unhook and close the socket with no more of
        our code, say so once, and let the server forget the connection."""
        self._state = State.CLOSED
        for remove in (self._loop.remove_reader, self._loop.remove_writer):
            with contextlib.suppress(Exception):
                remove(self._fd)
        self._reading = self._writing = False
        for handle in (self._timer, self._ftimer):
            if handle is not None:
                handle.cancel()
        with contextlib.suppress(Exception):
            self._raw.close()
        if not self._logged:
            self._logged = True
            log_conn.error(
                "done peer=%s end=internal-error reason=%r",
                format_address(self.peer),
                f"{exc.__class__.__name__}: {exc}",
                extra={"tag": self.tag},
            )
        self._server.forget(self)
