"""Sans-IO echo framings: what to send back for the bytes a peer sent.

No sockets, no asyncio, no clock: feed bytes with ``receive_data()`` and write
back what it returns. ``b""`` means the peer ended the stream, as in h11.
After each call, ``finished`` says whether the session is over (flush what
was returned, then close). This module imports nothing from the package.

Four framings:

- ``nul`` (:class:`NulFraming`): the original example's protocol, one message
  ended by a NUL byte.
- ``line`` (:class:`LineFraming`): persistent; each complete line echoed once,
  whole.
- ``raw`` (:class:`RawFraming`): RFC 862 echo, every byte back until the peer
  closes.
- ``hello`` (:class:`HelloFraming`): no echo; the server answers once (what
  the client's ClientHello offered) and closes.

Mode ``http`` (the server only) is :class:`tlsecho.tlsbin.HttpFraming`.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = [
    "DEFAULT_MAX_LINE",
    "ECHO_MODES",
    "MODES",
    "NUL",
    "Framing",
    "FramingError",
    "HelloFraming",
    "LineFraming",
    "LineTooLongError",
    "Mode",
    "NulFraming",
    "RawFraming",
    "make_framing",
]

NUL = b"\x00"
Mode = Literal["nul", "line", "raw", "hello", "http"]
MODES: tuple[Mode, ...] = ("nul", "line", "raw", "hello", "http")
#: The modes that echo (``hello`` answers instead).
ECHO_MODES: tuple[Mode, ...] = ("nul", "line", "raw")
DEFAULT_MAX_LINE = 64 * 1024


class FramingError(Exception):
    """The peer broke the framing's rules; the session must end.

    Only subclasses of this leave ``receive_data()``.
    """


class LineTooLongError(FramingError):
    """A line exceeded the configured maximum."""


class Framing(Protocol):
    """What the server needs of a framing (read-only: a wrapper such as
    :class:`tlsecho.wire.faults.EchoFault` may compute them)."""

    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def discarded(self) -> int: ...
    @property
    def finished(self) -> bool: ...
    @property
    def terminated(self) -> bool: ...

    def receive_data(self, data: bytes) -> bytes: ...


class _Counters:
    """The counters every framing keeps."""

    __slots__ = ("bytes_in", "bytes_out", "discarded", "finished", "terminated")

    def __init__(self) -> None:
        self.bytes_in = 0
        """Bytes fed so far, discarded ones included."""
        self.bytes_out = 0
        """Bytes returned for echoing so far."""
        self.discarded = 0
        """Bytes fed that will never be echoed."""
        self.finished = False
        """True once the session is over: the caller flushes and closes."""
        self.terminated = False
        """True if the session ended by the framing's own terminator."""


class NulFraming(_Counters):
    """The original example's protocol (mode ``nul``).

    Every byte before the first NUL is echoed exactly once, in order, as it
    arrives. The first NUL, wherever it falls in a chunk, ends the session:
    it and every byte after it are not echoed; the bytes after it are counted
    in :attr:`discarded`. End of stream without a NUL ends the session too.

    The original example only looked at the last byte of each 128-byte read,
    so a NUL in the middle of a read was echoed and the session went on; this
    class looks at every byte.
    """

    __slots__ = ()

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the peer; return the bytes to echo now.

        Args:
            data: the bytes received, or ``b""`` for end of stream.

        Returns:
            The bytes to write back (possibly empty). Check :attr:`finished`
            afterwards: when it is true, flush what was returned and close.
        """
        n = len(data)
        self.bytes_in += n
        if self.finished:
            self.discarded += n
            return b""
        if not n:
            self.finished = True
            return b""
        i = data.find(NUL)
        if i < 0:
            self.bytes_out += n
            return data
        self.finished = True
        self.terminated = True
        self.discarded += n - i - 1
        self.bytes_out += i
        return data[:i]


class RawFraming(_Counters):
    """RFC 862 echo over TLS (mode ``raw``): every byte back, verbatim, until
    the peer ends the stream (so :attr:`terminated` stays false)."""

    __slots__ = ()

    def receive_data(self, data: bytes) -> bytes:
        """Return ``data`` to echo; ``b""`` (end of stream) finishes."""
        n = len(data)
        self.bytes_in += n
        if self.finished:
            self.discarded += n
            return b""
        if not n:
            self.finished = True
            return b""
        self.bytes_out += n
        return data


class LineFraming(_Counters):
    """Persistent line echo (mode ``line``).

    Each complete line, ending in ``\\n`` (a ``\\r\\n`` is echoed as sent), is
    echoed once, whole, when its newline arrives. A line may be at most
    ``max_line`` bytes, its newline included. A longer one ends the session:
    the complete lines before it are still returned, :attr:`finished` becomes
    true and :attr:`error` says why. At end of stream an incomplete last line
    is discarded (and counted): a TLS peer cannot half-close, so it could not
    read that echo anyway.

    Each byte is scanned once: a peer dripping one byte at a time costs O(n),
    not O(n^2).
    """

    __slots__ = ("_buf", "error", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        super().__init__()
        self.max_line = max_line
        self._buf = bytearray()  # an incomplete line: never holds a newline
        self.error: FramingError | None = None
        """Why the session ended early (a line too long), or None."""

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes; return the complete lines to echo now."""
        n = len(data)
        self.bytes_in += n
        if self.finished:
            self.discarded += n
            return b""
        if not n:
            self.finished = True
            self.discarded += len(self._buf)
            self._buf.clear()
            return b""
        buf = self._buf
        limit = self.max_line
        head = b""  # the buffered line completed by this chunk
        start = 0  # data[:start] is echoed
        line_start = 0
        while True:
            nl = data.find(b"\n", line_start)
            if nl < 0:
                break
            if len(buf) + nl - line_start + 1 > limit:
                return self._too_long(head, data[start:line_start], n - line_start)
            if buf:
                head = bytes(buf) + data[: nl + 1]
                buf.clear()
                start = line_start = nl + 1
                continue
            line_start = nl + 1
        # data[start:line_start] are complete lines; the rest starts a line.
        rest = n - line_start
        if len(buf) + rest >= limit and rest:
            # Already max_line bytes without a newline: too long whatever comes.
            return self._too_long(head, data[start:line_start], rest)
        if line_start == n and not head and start == 0:
            out = data  # only complete lines: no copy
        else:
            out = head + data[start:line_start]
            buf += data[line_start:]
        self.bytes_out += len(out)
        return out

    def _too_long(self, head: bytes, lines: bytes, dropped: int) -> bytes:
        self.finished = True
        self.error = LineTooLongError(f"line longer than {self.max_line} bytes")
        self.discarded += len(self._buf) + dropped
        self._buf.clear()
        out = head + lines
        self.bytes_out += len(out)
        return out


class HelloFraming(_Counters):
    """Mode ``hello``: nothing is echoed; the server sends one answer
    (:meth:`answer`) and the session is over. What the client sends is
    counted and discarded."""

    __slots__ = ()

    def receive_data(self, data: bytes) -> bytes:
        """Count ``data`` as discarded; ``b""`` (end of stream) finishes."""
        self.bytes_in += len(data)
        self.discarded += len(data)
        if not data:
            self.finished = True
        return b""

    def answer(self, document: bytes) -> bytes:
        """The answer to send; the session is over after it."""
        self.bytes_out += len(document)
        self.finished = True
        return document


def make_framing(mode: Mode, *, max_line: int = DEFAULT_MAX_LINE) -> Framing:
    """A new framing object for ``mode``."""
    if mode == "nul":
        return NulFraming()
    if mode == "line":
        return LineFraming(max_line)
    if mode == "raw":
        return RawFraming()
    if mode == "hello":
        return HelloFraming()
    if mode == "http":
        raise ValueError("mode http is tlsecho.tlsbin.HttpFraming (the server only)")
    raise ValueError(f"unknown mode {mode!r}")
