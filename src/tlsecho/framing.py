"""Sans-IO echo framings: what to send back for the bytes a peer sent.

No sockets, no asyncio, no clock: feed bytes with :meth:`NulFraming.receive_data`
and write back what it returns. ``b""`` means the peer ended the stream, as in
h11. This module imports nothing from the package.
"""

from __future__ import annotations

__all__ = ["NUL", "NulFraming"]

NUL = b"\x00"


class NulFraming:
    """The original example's protocol (mode ``nul``).

    Every byte before the first NUL is echoed exactly once, in order, as it
    arrives. The first NUL, wherever it falls in a chunk, ends the session:
    it and every byte after it are not echoed; the bytes after it are counted
    in :attr:`discarded`. End of stream without a NUL ends the session too.

    The original example only looked at the last byte of each 128-byte read,
    so a NUL in the middle of a read was echoed and the session went on; this
    class looks at every byte.
    """

    __slots__ = ("bytes_in", "bytes_out", "discarded", "finished", "terminated")

    def __init__(self) -> None:
        self.bytes_in = 0
        """Bytes fed so far, terminator and discarded bytes included."""
        self.bytes_out = 0
        """Bytes returned for echoing so far."""
        self.discarded = 0
        """Bytes that came after the terminating NUL."""
        self.finished = False
        """True once the session is over: the caller flushes and closes."""
        self.terminated = False
        """True if the session ended with a NUL (not with end of stream)."""

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
