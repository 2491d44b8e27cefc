"""What a server reads off the socket before OpenSSL does: a PROXY header
(:class:`ProxyPeek`), then the client's ClientHello (:class:`HelloPeek`).

Both peek (``MSG_PEEK``): the bytes they do not own stay in the socket for
what comes next. :class:`HelloPeek` looks at the bytes waiting in the socket with ``MSG_PEEK``
(nothing is taken: OpenSSL reads the same bytes next) and feeds the new ones
to the sans-IO :class:`~tlsecho.wire.clienthello.ClientHelloParser`. While the
ClientHello is incomplete (a post-quantum one spans two TCP segments on a
1500-byte network), ``SO_RCVLOWAT`` asks the kernel to wake us only when more
bytes have come, not again for the ones already peeked.

The peek never changes what happens to the connection: whatever it finds (a
ClientHello, garbage, an early EOF, a reset), the handshake goes on and
OpenSSL judges the same bytes as it would have.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

from tlsecho.logs import get_logger
from tlsecho.server.net import Address, format_address
from tlsecho.wire.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHelloError,
    ClientHelloParser,
    RawClientHello,
)
from tlsecho.wire.faults import ALERTS, ECHO_FAULTS, FaultSpec, alert_record, pick
from tlsecho.wire.proxy_protocol import Accept, ProxyHeader, ProxyParser

__all__ = ["HelloPeek", "ProxyPeek", "client_of", "hello_fault"]

# PROXY headers are peeked (the ClientHello stays for OpenSSL) in steps this big.
_PROXY_PEEK = 4096

log = get_logger("echo")

# One buffer for every peek in this process (one event loop, one thread).
_SCRATCH = bytearray(MAX_CLIENT_HELLO)
_VIEW = memoryview(_SCRATCH)


class HelloPeek:
    """One connection's ClientHello, peeked."""

    __slots__ = ("_fed", "_lowat", "_parser", "error", "result")

    def __init__(self) -> None:
        self._parser = ClientHelloParser()
        self._fed = 0
        self._lowat = False
        self.result: RawClientHello | None = None
        """The ClientHello, when one was read whole (parsed when something
        reads it: a quiet server does not pay for the parsing)."""
        self.error: str | None = None
        """Why there is none: not a ClientHello, malformed, or cut short."""

    def read(self, sock: socket.socket) -> bool:
        """Peek at what has arrived: True when the handshake should go on
        (a ClientHello, or nothing more to wait for), False to wait."""
        try:
            n = sock.recv_into(_SCRATCH, MAX_CLIENT_HELLO, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError as exc:  # a reset: OpenSSL will see it too
            return self._done(f"no ClientHello: {exc.strerror or exc}")
        if n <= self._fed:  # EOF (or nothing new): OpenSSL will say what it thinks
            return self._done("no ClientHello: the client closed")
        try:
            self.result = self._parser.feed_raw(bytes(_VIEW[self._fed : n]))
        except ClientHelloError as exc:
            return self._done(str(exc))
        self._fed = n
        if self.result is not None:
            return self._done(None)
        if n == MAX_CLIENT_HELLO:  # tiny records (5 bytes of header each) fill it first
            return self._done(f"no ClientHello in the first {n} bytes")
        # Wake us when more than what is here has come (not for these bytes).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n + 1)
        self._lowat = True
        return False

    def _done(self, error: str | None) -> bool:
        self.error = error
        return True

    def reset(self, sock: socket.socket) -> None:
        """Give the socket back as it was (OpenSSL wants every byte at once)."""
        if self._lowat:
            self._lowat = False
            # Already closed by the peer: the handshake will say so.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


class ProxyPeek:
    """One connection's PROXY header: exactly its bytes are taken off the
    socket, the ClientHello after it stays for OpenSSL."""

    __slots__ = ("_parser",)

    def __init__(self, accept: Accept) -> None:
        self._parser = ProxyParser(accept)

    @property
    def header(self) -> ProxyHeader | None:
        """The header, once it was read whole."""
        return self._parser.header

    def read(self, sock: socket.socket) -> ProxyHeader | None:
        """The header once it is whole, else None (wait for more).

        Raises:
            ProxyProtocolError: malformed, or not the version accepted.
            OSError: the socket failed, or closed before the header's end.
        """
        try:
            data = sock.recv(_PROXY_PEEK, socket.MSG_PEEK)
        except BlockingIOError:
            return None
        if not data:
            raise ConnectionResetError("closed before the end of the PROXY header")
        used = self._parser.feed(data)
        # Incomplete: all of it is header; complete: exactly the header's bytes.
        sock.recv(used)
        return self._parser.header


def hello_fault(
    sock: socket.socket, faults: Sequence[FaultSpec], raw: RawClientHello | None
) -> tuple[FaultSpec | None, str | None]:
    """The fault for this ClientHello, if one fires, and the server name it
    asked for. The faults that close are done here: the ClientHello is taken
    off the socket first (closing with unread bytes would send a reset),
    then the alert and the FIN, or the RST."""
    if not faults:
        return None, None
    hello = raw.parsed() if raw is not None else None
    sni = hello.server_name if hello is not None else None
    fault = pick(faults, sni)
    if fault is None or fault.name == "stall" or fault.name in ECHO_FAULTS:
        return fault, sni
    if fault.name == "reset-after-hello":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return fault, sni
    with contextlib.suppress(OSError):
        while sock.recv(MAX_CLIENT_HELLO):
            pass
    if fault.name == "alert" and fault.arg is not None:
        with contextlib.suppress(OSError):
            sock.send(alert_record(ALERTS[fault.arg]))
    return fault, sni


def client_of(header: ProxyHeader, real_peer: Address, tag: str | None) -> Address:
    """The client a PROXY header names (else the TCP peer); with ``tag``,
    the header's debug line."""
    if tag is not None:
        src = format_address(header.source) if header.source else "-"
        log.debug(header.describe(src, format_address(real_peer)), extra={"tag": tag})
    if header.command == "PROXY" and header.source is not None and header.family != "UNIX":
        return header.source
    return real_peer
