"""One connection's vocabulary: its states and the allowed changes, how it
can end, what it leaves behind, and what it needs of its server.

An engine (:mod:`tlsecho.server.engines`) moves the bytes and follows these rules;
the server, the logs and the metrics read the :class:`ConnectionRecord`.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from tlsecho.errors import failure_reason
from tlsecho.server.net import format_address

if TYPE_CHECKING:  # annotations only: no import of ssl-using modules at run time
    from tlsecho.config import ServerConfig
    from tlsecho.server.identity import Policy
    from tlsecho.server.net import Address
    from tlsecho.tls import ServerTLS
    from tlsecho.wire.clienthello import RawClientHello
    from tlsecho.wire.deadlines import Limits
    from tlsecho.wire.framing import Framing

__all__ = ["TRANSITIONS", "ConnectionOwner", "ConnectionRecord", "Outcome", "State"]


class State(enum.Enum):
    """Where a connection is; :data:`TRANSITIONS` says where it may go next."""

    PROXY = "proxy"  # reading the PROXY header, before TLS
    HELLO = "hello"  # peeking at the ClientHello, before OpenSSL reads it
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # flushing the echo, then sending close_notify
    DRAINING = "draining"  # close_notify sent (or handshake refused): discard until EOF
    CLOSED = "closed"


#: Every allowed state change, in one place (as h11's ``_state.py``).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PROXY: frozenset({State.HELLO, State.HANDSHAKE, State.CLOSED}),
    State.HELLO: frozenset({State.HANDSHAKE, State.CLOSED}),
    # A refused handshake lingers (DRAINING) so the client reads our alert.
    State.HANDSHAKE: frozenset({State.OPEN, State.DRAINING, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.DRAINING, State.CLOSED}),
    State.DRAINING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class Outcome(enum.StrEnum):
    """How a connection ended: the ``end=`` of its log line, the ``outcome``
    of its JSON record and the label of ``tlsecho_connections_total``."""

    TERMINATED = "terminated"
    """The client ended its message with a NUL (mode ``nul``)."""
    ANSWERED = "answered"
    """The server sent its answer and closed (mode ``hello``)."""
    EOF = "eof"
    """The client closed (close_notify, or TCP close noted in ``reason``)."""
    FRAMING_ERROR = "framing-error"
    """The framing refused the input (a line over ``--max-line``)."""
    PROXY_ERROR = "proxy-error"
    """A missing, malformed or slow PROXY header."""
    HANDSHAKE_FAILED = "handshake-failed"
    """The TLS handshake failed or timed out."""
    ALPN_REFUSED = "alpn-refused"
    """No ALPN protocol in common, with ``--alpn-required``."""
    IDENTITY_REFUSED = "identity-refused"
    """The client certificate matched no ``--allow-*`` (or there was none)."""
    IDLE_TIMEOUT = "idle-timeout"
    """No byte either way for ``--idle-timeout``."""
    SESSION_TIMEOUT = "session-timeout"
    """Open for ``--max-session``."""
    FAULT = "fault"
    """A ``--fault`` ended it (the ``fault`` field says which)."""
    SERVER_SHUTDOWN = "server-shutdown"
    """The server stopped while the connection was open."""
    ERROR = "error"
    """A socket error while open."""
    INTERNAL_ERROR = "internal-error"
    """A fault of ours (an unexpected exception) ended it at once: never an
    echo, never a policy check skipped (``reason`` names the exception)."""


@dataclass(slots=True)
class ConnectionRecord:
    """What a finished connection leaves: one log line, one JSON record, the metrics.

    Not frozen: a frozen dataclass sets each field through
    ``object.__setattr__``, and one is made per connection (1.5 µs more).
    """

    peer: str
    """The client (the PROXY header's source when there is one)."""
    via: str | None
    """The address the TCP connection came from, when a PROXY header named another."""
    tls_version: str | None
    cipher: str | None
    sni: str | None
    alpn: str | None
    client_cert: str | None
    """The client certificate's subject, when one was presented."""
    bytes_in: int
    """Plaintext bytes received."""
    bytes_out: int
    """Echo bytes OpenSSL took: what really went out, never what was meant to."""
    discarded: int
    """Bytes received after the end of the message."""
    duration_s: float
    outcome: Outcome
    reason: str | None
    """Why it ended badly, in a short stable phrase (None when it did not)."""
    worker: int | None = None
    """The worker process that served it (``--workers``; None without)."""
    endpoint: str | None = None
    """The named listener that accepted it (``tlsecho badssl``; None without)."""
    fault: str | None = None
    """The ``--fault`` that fired on it (``alert=protocol_version``), if one did."""
    hello: RawClientHello | None = field(default=None, repr=False, compare=False)
    """The ClientHello (not a JSON key itself: the JSON log expands it)."""

    @property
    def ja4(self) -> str | None:
        """The ClientHello's JA4 (None without a well-formed ClientHello, or
        with ``--no-fingerprint``)."""
        return self.hello.ja4() if self.hello is not None else None

    @classmethod
    def build(
        cls,
        *,
        peer: Address,
        real_peer: Address,
        tls: tuple[str, str, str, str],
        client_cert: str | None,
        framing: Framing,
        written: int,
        duration: float,
        outcome: Outcome | None,
        exc: BaseException | None,
        ragged: bool,
        worker: int | None = None,
        endpoint: str | None = None,
        hello: RawClientHello | None = None,
        fault: str | None = None,
    ) -> ConnectionRecord:
        """The record of a connection that has just closed.

        Args:
            tls: version, cipher, SNI and ALPN, each ``"-"`` when unknown.
            written: echo bytes that really went out (may be below
                ``framing.bytes_out`` when the close cut the echo short).
            outcome: how it ended, when the engine knows; else ``eof`` or
                ``error`` from ``exc``.
            exc: what ended it, when something went wrong.
            ragged: the peer closed TCP without close_notify.
            hello: the ClientHello, when the server read it.
        """
        if outcome is None:
            outcome = Outcome.EOF if exc is None else Outcome.ERROR
        if exc is None:
            reason = None
        elif outcome is Outcome.INTERNAL_ERROR:
            reason = f"{exc.__class__.__name__}: {exc}"
        else:
            reason = failure_reason(exc)
        if ragged and reason is None:
            reason = "closed without close_notify"
        if written < framing.bytes_out and reason is None:
            # The log says what really went out, never what was meant to.
            reason = f"echo cut short: {framing.bytes_out - written} bytes not sent"
        version, cipher, sni, alpn = tls
        return cls(
            peer=format_address(peer),
            via=format_address(real_peer) if peer != real_peer else None,
            tls_version=None if version == "-" else version,
            cipher=None if cipher == "-" else cipher,
            sni=None if sni == "-" else sni,
            alpn=None if alpn == "-" else alpn,
            client_cert=client_cert,
            bytes_in=framing.bytes_in,
            bytes_out=written,
            discarded=framing.discarded,
            duration_s=round(duration, 6),
            outcome=outcome,
            reason=reason,
            worker=worker,
            endpoint=endpoint,
            hello=hello,
            fault=fault,
        )

    def as_fields(self) -> dict[str, Any]:
        """The JSON log record's keys (``event`` first; the ClientHello's
        details are the JSON formatter's to add)."""
        out: dict[str, Any] = {"event": "connection"}
        for name in _FIELD_NAMES:
            out[name] = getattr(self, name)
            if name == "alpn":
                out["ja4"] = self.ja4
        out["outcome"] = str(self.outcome)
        return out


_FIELD_NAMES = tuple(f.name for f in fields(ConnectionRecord) if f.name != "hello")


class ConnectionOwner(Protocol):
    """What a connection needs of its server."""

    config: ServerConfig
    metrics: Any
    hard_closing: bool
    health: Any
    worker: int | None
    name: str | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def tls(self) -> ServerTLS: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def policy(self) -> Policy: ...
    def watch_deadlines(self) -> None: ...
    def forget(self, conn: Any) -> None: ...
    def connection_lost(self, conn: Any, record: ConnectionRecord) -> None: ...
