"""Server-side TLS faults (sans-IO): what ``--fault SPEC`` means, and which
fault a connection gets.

``SPEC`` is ``NAME[=ARG][@SNI][~P]``: the fault, an argument where it takes
one, the server name it is limited to (so one port can host a whole
catalog), and the probability it fires with (0 to 1, default 1). The first
fault whose name matches the ClientHello's SNI and whose dice say so fires.

Faults at the ClientHello (the server has read it, OpenSSL has not):

- ``stall``: never answer (the client times out; the server gives up at
  ``--handshake-timeout``);
- ``close-after-hello``: close (FIN) instead of a ServerHello;
- ``reset-after-hello``: reset (RST) instead of a ServerHello;
- ``alert=NAME``: a fatal alert of that name (``handshake_failure``,
  ``protocol_version``, ``unrecognized_name``, ``internal_error``, ...)
  instead of a ServerHello, then close.

Faults on the echo (toxiproxy's words), as a wrapper around the framing
(:class:`EchoFault`):

- ``limit=N``: echo N bytes, then close_notify;
- ``stall-after=N``: echo N bytes, then silence (what comes later is read
  and dropped; the session ends at ``--idle-timeout`` or when the client
  closes).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALERTS",
    "ECHO_FAULTS",
    "FAULTS",
    "EchoFault",
    "FaultSpec",
    "alert_record",
    "parse_fault",
    "pick",
]

#: TLS alert descriptions (RFC 8446 6, RFC 5246 7.2), the fatal ones.
ALERTS = {
    "unexpected_message": 10,
    "bad_record_mac": 20,
    "record_overflow": 22,
    "handshake_failure": 40,
    "bad_certificate": 42,
    "unsupported_certificate": 43,
    "certificate_revoked": 44,
    "certificate_expired": 45,
    "certificate_unknown": 46,
    "illegal_parameter": 47,
    "unknown_ca": 48,
    "access_denied": 49,
    "decode_error": 50,
    "decrypt_error": 51,
    "protocol_version": 70,
    "insufficient_security": 71,
    "internal_error": 80,
    "inappropriate_fallback": 86,
    "missing_extension": 109,
    "unsupported_extension": 110,
    "unrecognized_name": 112,
    "bad_certificate_status_response": 113,
    "unknown_psk_identity": 115,
    "certificate_required": 116,
    "no_application_protocol": 120,
}

#: The faults this server has, and whether each takes an argument.
FAULTS = {
    "stall": False,
    "close-after-hello": False,
    "reset-after-hello": False,
    "alert": True,
    "limit": True,
    "stall-after": True,
}
#: The faults that act on the echo, not at the ClientHello.
ECHO_FAULTS = ("limit", "stall-after")


@dataclass(frozen=True)
class FaultSpec:
    """One ``--fault``."""

    name: str
    arg: str | None = None
    sni: str | None = None
    """Only for clients asking for this server name (None: every client)."""
    probability: float = 1.0

    @property
    def label(self) -> str:
        """What the log line and the metrics call it (``alert=protocol_version``)."""
        return f"{self.name}={self.arg}" if self.arg is not None else self.name


def parse_fault(text: str) -> FaultSpec:
    """``NAME[=ARG][@SNI][~P]`` as a :class:`FaultSpec`.

    Raises:
        ValueError: a one-line reason.
    """
    rest, _, prob = text.partition("~")
    rest, _, sni = rest.partition("@")
    name, eq, arg = rest.strip().partition("=")
    if name not in FAULTS:
        raise ValueError(f"--fault {text}: unknown fault {name!r} (known: {', '.join(FAULTS)})")
    if FAULTS[name] != bool(eq):
        raise ValueError(
            f"--fault {text}: {name} "
            + ("takes a value (alert=NAME)" if FAULTS[name] else "takes no value")
        )
    if name == "alert" and arg not in ALERTS:
        raise ValueError(f"--fault {text}: unknown alert {arg!r} (known: {', '.join(ALERTS)})")
    if name in ECHO_FAULTS and not (arg.isdigit() and int(arg) >= 0):
        raise ValueError(f"--fault {text}: {name} takes a number of bytes")
    probability = 1.0
    if prob:
        try:
            probability = float(prob)
        except ValueError:
            raise ValueError(f"--fault {text}: ~{prob} is not a probability") from None
        if not 0 <= probability <= 1:
            raise ValueError(f"--fault {text}: the probability must be 0 to 1, not {prob}")
    if "@" in text and not sni:
        raise ValueError(f"--fault {text}: @ needs a server name")
    return FaultSpec(name, arg if eq else None, sni or None, probability)


def pick(
    faults: Sequence[FaultSpec], sni: str | None, dice: Callable[[], float] = random.random
) -> FaultSpec | None:
    """The fault this connection gets (SNI compared without case), or None."""
    name = sni.lower() if sni else None
    for fault in faults:
        if fault.sni is not None and fault.sni.lower() != name:
            continue
        if fault.probability >= 1 or dice() < fault.probability:
            return fault
    return None


def alert_record(description: int, version: int = 0x0303) -> bytes:
    """A fatal alert as a plaintext TLS record (before any key is agreed)."""
    return bytes([21, version >> 8, version & 0xFF, 0, 2, 2, description])


class EchoFault:
    """A framing that echoes at most ``N`` bytes of what the one it wraps
    would: then ``limit`` ends the session (close_notify), ``stall-after``
    goes silent. The counters are the wrapped framing's, so the connection's
    line says ``echo cut short: K bytes not sent``."""

    __slots__ = ("_inner", "_left", "_limit", "finished")

    def __init__(self, inner: Any, fault: FaultSpec) -> None:
        self._inner = inner
        self._left = int(fault.arg or 0)
        self._limit = fault.name == "limit"
        self.finished = self._limit and self._left == 0

    @property
    def bytes_in(self) -> int:
        return int(self._inner.bytes_in)

    @property
    def bytes_out(self) -> int:
        """What the echo would have been (the engine counts what went out)."""
        return int(self._inner.bytes_out)

    @property
    def discarded(self) -> int:
        return int(self._inner.discarded)

    @property
    def terminated(self) -> bool:
        return bool(self._inner.terminated)

    def receive_data(self, data: bytes) -> bytes:
        """The wrapped framing's echo, cut at the limit."""
        echo: bytes = self._inner.receive_data(data)
        echo = echo[: self._left]
        self._left -= len(echo)
        # limit: over once N bytes are out; stall-after: silent, on until it ends.
        self.finished = self._inner.finished or (self._limit and self._left == 0)
        return echo
