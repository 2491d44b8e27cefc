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
  closes);
- ``reset-after=N``: echo N bytes, then a reset (RST).

Faults on our TLS records (:class:`RecordFault`; the memory-BIO engine,
where every byte we send passes through tlsecho):

- ``reset-mid-handshake``: a reset right after our first flight;
- ``slow-handshake=SECONDS``: each of our handshake flights held back;
- ``slice=BYTES[:DELAY_MS]``: everything we send in pieces of BYTES (one TCP
  segment each), DELAY_MS apart;
- ``corrupt``: one byte of our first application-data record flipped (the
  client must report a bad record MAC);
- ``truncate``: the session ends with a FIN and no close_notify;
- ``garbage-after-handshake``: bytes that are no TLS record right after the
  handshake;
- ``latency=MS[:JITTER_MS]``: each echo held back MS (plus or minus JITTER);
- ``bandwidth=BYTES_PER_SECOND``: the echo sent no faster than that.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALERTS",
    "ECHO_FAULTS",
    "FAULTS",
    "GARBAGE",
    "RECORD_FAULTS",
    "EchoFault",
    "FaultSpec",
    "RecordFault",
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
    "reset-after": True,
    "reset-mid-handshake": False,
    "slow-handshake": True,
    "slice": True,
    "corrupt": False,
    "truncate": False,
    "garbage-after-handshake": False,
    "latency": True,
    "bandwidth": True,
}
#: The faults that act on the echo, not at the ClientHello.
ECHO_FAULTS = ("limit", "stall-after", "reset-after")


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
            + (f"takes a value ({name}=...)" if FAULTS[name] else "takes no value")
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
    spec = FaultSpec(name, arg if eq else None, sni or None, probability)
    check_record_fault(spec)
    return spec


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
    would: then ``limit`` ends the session (close_notify; ``reset-after``: the
    engine resets instead), ``stall-after`` goes silent. The counters are
    the wrapped framing's, so the connection's line says ``echo cut short:
    K bytes not sent``."""

    __slots__ = ("_inner", "_left", "_limit", "finished", "resets")

    def __init__(self, inner: Any, fault: FaultSpec) -> None:
        self._inner = inner
        self._left = int(fault.arg or 0)
        self._limit = fault.name in ("limit", "reset-after")
        self.resets = fault.name == "reset-after"
        """At the limit, the engine resets the connection (not close_notify)."""
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
        if self._limit:  # over once N bytes are out
            self.finished = self._inner.finished or self._left == 0
        else:  # stall-after: past N bytes, silent until the client ends the stream
            self.finished = self._inner.finished and (self._left > 0 or not data)
        return echo


#: The faults that act on our records: they need the memory-BIO engine,
#: where every byte we send passes through tlsecho (``--engine membio``).
RECORD_FAULTS = (
    "reset-mid-handshake",
    "slow-handshake",
    "slice",
    "corrupt",
    "truncate",
    "garbage-after-handshake",
    "latency",
    "bandwidth",
)
#: What ``garbage-after-handshake`` sends: not a TLS record (0x74 is no
#: content type), so the client's record layer must refuse it.
GARBAGE = b"this is not a TLS record\r\n"
_APPLICATION_DATA = 23


def _numbers(spec: FaultSpec, count: int) -> list[float]:
    """``A[:B]`` as numbers (B optional): the argument's parts."""
    parts = (spec.arg or "").split(":")
    if not 1 <= len(parts) <= count:
        raise ValueError
    values = [float(p) for p in parts]
    if any(not v >= 0 or v == float("inf") for v in values):
        raise ValueError
    return values


def check_record_fault(spec: FaultSpec) -> None:
    """Raises ValueError (a one-line reason) when the argument is wrong."""
    shapes = {
        "slow-handshake": ("SECONDS", 1),
        "slice": ("BYTES[:DELAY_MS]", 2),
        "latency": ("MS[:JITTER_MS]", 2),
        "bandwidth": ("BYTES_PER_SECOND", 1),
    }
    if spec.name not in shapes:
        return
    shape, count = shapes[spec.name]
    try:
        values = _numbers(spec, count)
    except ValueError:
        raise ValueError(f"--fault {spec.label}: {spec.name} takes {shape}") from None
    if spec.name in ("slice", "bandwidth") and values[0] < 1:
        raise ValueError(f"--fault {spec.label}: {spec.name} needs at least 1 byte")


#: What one held piece costs beyond its bytes (a tuple, a float, a bytes
#: object's header and the deque's slot), counted as bytes by
#: :meth:`RecordFault.pressure`.
PIECE_COST = 128


class RecordFault:
    """What a record-level fault does to the bytes the server sends, as a
    queue of (due time, bytes): sans-IO, the time is an argument.

    The engine passes each flush of OpenSSL's output to :meth:`push` with the
    connection's phase (``handshake``, ``open`` or ``closing``), sends what
    :meth:`due` returns and wakes up at :meth:`next_due`. Order is kept: a
    piece is never due before the one ahead of it.
    """

    __slots__ = (
        "_a",
        "_b",
        "_corrupted",
        "_free",
        "_held",
        "_queue",
        "_rng",
        "flights",
        "name",
        "spec",
    )

    def __init__(self, spec: FaultSpec, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        values = _numbers(spec, 2) if spec.arg else []
        self._a = values[0] if values else 0.0  # bytes, seconds, ms or bytes/s
        self._b = values[1] if len(values) > 1 else 0.0  # delay or jitter (ms)
        self._rng = rng or random.Random()
        self._queue: deque[tuple[float, bytes]] = deque()
        self._held = 0
        self._corrupted = False
        self._free = 0.0  # bandwidth: when the next byte may go
        self.flights = 0
        """Handshake flights pushed so far (reset-mid-handshake fires after the first)."""

    @property
    def truncate(self) -> bool:
        """Close without close_notify (a FIN after the echo)."""
        return self.name == "truncate"

    def after_handshake(self) -> bytes:
        """What to send once the handshake is done (garbage-after-handshake)."""
        return GARBAGE if self.name == "garbage-after-handshake" else b""

    def push(self, data: bytes, phase: str, now: float) -> None:
        """OpenSSL wrote ``data`` (whole records) in ``phase`` at ``now``."""
        if not data:
            return
        name = self.name
        if phase == "handshake":
            self.flights += 1
        if name == "corrupt" and phase == "open" and not self._corrupted:
            data = self._corrupt(data)
        pieces: list[tuple[float, bytes]]
        if name == "slice":
            n, step = int(self._a), self._b / 1000
            pieces = [(i * step, data[j : j + n]) for i, j in enumerate(range(0, len(data), n))]
        elif name == "slow-handshake" and phase == "handshake":
            pieces = [(self._a, data)]
        elif name == "latency" and phase != "handshake":
            jitter = self._rng.uniform(-self._b, self._b) if self._b else 0.0
            pieces = [(max(0.0, self._a + jitter) / 1000, data)]
        elif name == "bandwidth" and phase != "handshake":
            rate = self._a
            chunk = max(1, int(rate / 10))  # a tenth of a second's worth per send
            t = max(now, self._free)  # when the line is next free
            pieces = []
            for j in range(0, len(data), chunk):
                piece = data[j : j + chunk]
                pieces.append((t - now, piece))
                t += len(piece) / rate
            self._free = t
        else:
            pieces = [(0.0, data)]
        last = self._queue[-1][0] if self._queue else now
        for delay, piece in pieces:
            due = now + delay
            last = due = max(due, last)
            self._queue.append((due, piece))
            self._held += len(piece)

    def due(self, now: float) -> list[bytes]:
        """The pieces whose time has come, in order."""
        out = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            piece = queue.popleft()[1]
            self._held -= len(piece)
            out.append(piece)
        return out

    def held(self) -> int:
        """Bytes still held back."""
        return self._held

    def pressure(self) -> int:
        """What the held pieces cost, for backpressure: their bytes and
        :data:`PIECE_COST` per piece (``slice=1:...`` holds a 16 KiB
        record as 16 384 pieces, which cost far more than 16 KiB)."""
        return self._held + PIECE_COST * len(self._queue)

    def next_due(self) -> float | None:
        """When the next piece is due (None: nothing waits)."""
        return self._queue[0][0] if self._queue else None

    def _corrupt(self, data: bytes) -> bytes:
        """Flip the last byte (its authentication tag) of the first
        application-data record in ``data``."""
        pos = 0
        while pos + 5 <= len(data):
            length = int.from_bytes(data[pos + 3 : pos + 5], "big")
            end = pos + 5 + length
            if data[pos] == _APPLICATION_DATA and length and end <= len(data):
                self._corrupted = True
                return data[: end - 1] + bytes([data[end - 1] ^ 0xFF]) + data[end:]
            pos = end
        return data
