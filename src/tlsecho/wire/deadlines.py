"""A connection's deadlines as a pure function of ``now``.

No clock and no timers here (STYLE.md 2, aioquic's ``get_timer()`` /
``handle_timer(now)``): the connection tells this object what happened and
when, asks :meth:`Deadlines.get_timer` when it next wants to be woken, and
hands the time back to :meth:`Deadlines.handle_timer`, which says which limit
(if any) has passed. The adapter chooses how to be woken: a loop timer while
handshaking or closing (short-lived), the server's sweep while open (no timer
per idle connection).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Deadlines", "Expired", "Limits"]


class Expired(enum.StrEnum):
    """Which limit passed."""

    HANDSHAKE = "handshake"
    """The PROXY header and the handshake took longer than the handshake timeout."""
    SESSION = "session"
    """The session outlived its limit since the handshake."""
    IDLE = "idle"
    """No byte either way for the idle timeout."""
    CLOSE = "close"
    """The close (flush, close_notify, drain or linger) took too long."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's limits, in seconds (shared by all its connections)."""

    handshake: float
    """From accept to the end of the handshake (PROXY header included): absolute,
    so a peer dripping bytes cannot extend it."""
    idle: float | None
    """No byte either way for this long, once open (None: never)."""
    session: float | None
    """From the end of the handshake (None: never)."""
    close: float
    """For the flush and the TLS close, once closing starts."""
    linger: float
    """After a refused handshake, for the peer to read our alert and close."""


class _Phase(enum.Enum):
    HANDSHAKE = 0
    OPEN = 1
    CLOSING = 2
    DONE = 3


class Deadlines:
    """One connection's deadlines. Every method takes the time as an argument.

    Args:
        limits: the server's limits.
        now: when the connection was accepted.
    """

    __slots__ = ("_by", "_limits", "_phase", "last_io", "started")

    def __init__(self, limits: Limits, now: float) -> None:
        self._limits = limits
        self._phase = _Phase.HANDSHAKE
        self.started = now
        """When the connection was accepted."""
        self.last_io = now
        """When a byte last moved either way (set by the connection on the hot path)."""
        # The phase's own fixed deadline: the handshake's, the session's, the close's.
        self._by: float | None = now + limits.handshake

    def opened(self, now: float) -> None:
        """The handshake completed: the idle and session limits apply from now."""
        self._phase = _Phase.OPEN
        self.last_io = now
        session = self._limits.session
        self._by = None if session is None else now + session

    def closing(self, now: float) -> None:
        """The close began (flush, close_notify, drain)."""
        self._phase = _Phase.CLOSING
        self._by = now + self._limits.close

    def lingering(self, now: float) -> None:
        """A refused handshake: wait for the peer to read the alert and close."""
        self._phase = _Phase.CLOSING
        self._by = now + min(self._limits.linger, self._limits.close)

    def done(self) -> None:
        """The connection is closed: no more deadlines."""
        self._phase = _Phase.DONE
        self._by = None

    def get_timer(self) -> float | None:
        """When to call :meth:`handle_timer` next (None: no deadline pending)."""
        if self._phase is not _Phase.OPEN:
            return self._by
        idle = self._limits.idle
        at_idle = None if idle is None else self.last_io + idle
        if self._by is None:
            return at_idle
        return self._by if at_idle is None else min(self._by, at_idle)

    def handle_timer(self, now: float) -> Expired | None:
        """Which limit has passed at ``now``, if any (the session limit before
        the idle one when both have)."""
        phase = self._phase
        if phase is _Phase.OPEN:
            if self._by is not None and now >= self._by:
                return Expired.SESSION
            idle = self._limits.idle
            if idle is not None and now - self.last_io >= idle:
                return Expired.IDLE
            return None
        if self._by is None or now < self._by:
            return None
        return Expired.HANDSHAKE if phase is _Phase.HANDSHAKE else Expired.CLOSE
