"""The memory-BIO engine (``--engine membio``): every byte through our hands.

OpenSSL never touches the socket. Each wake-up makes one ``recv_into`` a
buffer shared by every connection of the process, which takes every record
that has arrived; the bytes go into the connection's incoming memory BIO and
the plaintext OpenSSL makes of them goes through the framing. What OpenSSL
writes (our handshake flight, echo records, alerts, close_notify) collects in
the outgoing memory BIO and leaves in one ``send`` per flush. The PROXY
header and the ClientHello are read from the same bytes, not peeked
(``MSG_PEEK``), before OpenSSL sees them.

The states, deadlines, framings and records are those of
:class:`~tlsecho.server.engines.base.EngineConnection`, as on the SSLSocket engine:
only the moving of bytes differs.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from tlsecho.server.connection import ConnectionOwner, Outcome, State
from tlsecho.server.engines.base import HIGH_WATER, LOW_WATER, EngineConnection, log_conn
from tlsecho.server.engines.pretls import client_of
from tlsecho.server.net import Address
from tlsecho.wire.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHelloError,
    ClientHelloParser,
    RawClientHello,
)
from tlsecho.wire.faults import GARBAGE, FaultSpec, RecordFault
from tlsecho.wire.proxy_protocol import ProxyParser, ProxyProtocolError

__all__ = ["BioTlsConnection"]

_READ_SIZE = 16384  # SSL_read gives at most one record's plaintext
# One receive buffer for every connection of the process (one loop, one
# thread): a wake-up takes up to this much, every record that is there.
_RECV = bytearray(256 * 1024)
_RECV_VIEW = memoryview(_RECV)


class _Hello:
    """The ClientHello, from the bytes as they come (they are ours: no peek)."""

    __slots__ = ("_parser", "error", "result")

    def __init__(self) -> None:
        self._parser = ClientHelloParser()
        self.result: RawClientHello | None = None
        self.error: str | None = None

    def feed(self, data: bytes, total: int) -> bool:
        """True once there is nothing more to wait for (a ClientHello, or not)."""
        if not data:
            self.error = "no ClientHello: the client closed"
            return True
        try:
            self.result = self._parser.feed_raw(data)
        except ClientHelloError as exc:
            self.error = str(exc)
            return True
        if self.result is None and total >= MAX_CLIENT_HELLO:
            self.error = f"no ClientHello in the first {total} bytes"
            return True
        return self.result is not None


class BioTlsConnection(EngineConnection):
    """One client, TLS over memory BIOs."""

    __slots__ = (
        "_echo_end",
        "_in",
        "_out",
        "_pending",
        "_pushed",
        "_rfault",
        "_sent",
        "_stimer",
    )

    proxy_reader = ProxyParser
    hello_reader = _Hello

    def __init__(self, server: ConnectionOwner, sock: socket.socket, peer: Address) -> None:
        super().__init__(server, sock, peer)
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        # Bytes read before OpenSSL exists (after a PROXY header, a ClientHello).
        self._pending = b""
        # What went out, in record bytes: the log's out= counts echo that
        # really left, never echo a fault held back or a failed send dropped,
        # and never takes a lost close_notify for lost echo.
        self._pushed = 0  # taken from OpenSSL's outgoing BIO
        self._sent = 0  # taken by the kernel
        self._echo_end = 0  # where the last echo record ends, in _pushed's count
        self._rfault: RecordFault | None = None  # a --fault on our records
        self._stimer: asyncio.TimerHandle | None = None  # its next piece

    def start(self) -> None:
        """Begin: every state reads (the bytes are ours from the first)."""
        if self._state is State.HANDSHAKE:
            self._wrap(b"")
        if self._state is not State.CLOSED:
            self._want_read(True)

    # -- events -----------------------------------------------------------------
    def _on_readable(self) -> None:
        state = self._state
        if state is State.DRAINING:
            self._drain()
            return
        try:
            n = self._raw.recv_into(_RECV)
        except BlockingIOError:
            return
        except OSError as exc:  # a reset
            if state is State.PROXY:
                self._outcome = Outcome.PROXY_ERROR
            elif state is not State.OPEN and state is not State.CLOSING:
                self._outcome = Outcome.HANDSHAKE_FAILED
            self._close(exc)
            return
        if state is State.PROXY:
            self._proxy_bytes(bytes(_RECV_VIEW[:n]))
            return
        if state is State.HELLO:
            self._hello_bytes(bytes(_RECV_VIEW[:n]))
            return
        bio = self._in
        assert bio is not None
        if n:
            bio.write(_RECV_VIEW[:n])
        else:
            bio.write_eof()
        if state is State.OPEN:
            self._deadlines.last_io = self._loop.time()
            self._read()
        elif state is State.HANDSHAKE:
            self._handshake()
        else:
            self._shutdown()

    def _on_writable(self) -> None:
        self._flush()

    # -- before TLS: the PROXY header, the ClientHello --------------------------------
    def _proxy_bytes(self, data: bytes) -> None:
        parser = self._proxy
        assert parser is not None
        if not data:
            err = ConnectionResetError("closed before the end of the PROXY header")
            self._fail(Outcome.PROXY_ERROR, err)
            return
        try:
            used = parser.feed(data)
        except ProxyProtocolError as exc:
            self._fail(Outcome.PROXY_ERROR, exc)
            return
        if parser.header is None:
            return
        self.peer = client_of(parser.header, self.real_peer, self.tag if self._debug else None)
        rest = data[used:]
        if self._hello is not None:
            self._enter(State.HELLO)
            if rest:
                self._hello_bytes(rest)
        else:
            self._enter(State.HANDSHAKE)
            self._wrap(rest)

    def _hello_bytes(self, data: bytes) -> None:
        hello = self._hello
        assert hello is not None
        self._pending += data
        if not hello.feed(data, len(self._pending)) or not self._hello_fault():
            return
        self._enter(State.HANDSHAKE)
        pending, self._pending = self._pending, b""
        self._wrap(pending, eof=not data)

    # -- handshake ------------------------------------------------------------
    def _wrap(self, first: bytes, *, eof: bool = False) -> None:
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            sock = self._server.tls.context.wrap_bio(self._in, self._out, server_side=True)
        except (OSError, ValueError) as exc:
            self._fail(Outcome.HANDSHAKE_FAILED, exc)
            return
        self._adopt(sock)
        if first:
            self._in.write(first)
        if eof:
            self._in.write_eof()
        if first or eof:
            self._handshake()

    def _handshake(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()  # our flight
            rfault = self._rfault
            if rfault is not None and rfault.name == "reset-mid-handshake" and rfault.flights:
                self._reset()
            return
        except OSError as exc:  # ssl.SSLError included: the peer's mistake
            self._handshake_failed(sock, exc)
            self._send_out()  # our alert
            if self._state is State.HANDSHAKE:
                self._linger(exc)
            return
        # Our last flight and the session tickets go with whatever the session
        # sends first (a send that fails here is for the next read to explain).
        if self._rfault is not None and self._rfault.name == "garbage-after-handshake":
            self._send_out()  # our last flight, then what is no record
            self._pushed += len(GARBAGE)
            self._send_raw(GARBAGE)
        self._handshake_done(sock)
        self._send_out()

    # -- echo -----------------------------------------------------------------
    def _read(self) -> None:
        """Everything OpenSSL can make of the bytes in the incoming BIO; the
        echo records leave in one send."""
        io = self._io
        inc = self._in
        assert inc is not None
        framing = self._framing
        while True:
            try:
                data = io.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLEOFError:
                self._ragged = True  # TCP closed without close_notify: the end all the same
                data = b""
            except OSError as exc:  # a bad record: OpenSSL wrote its alert
                self._send_out()
                self._close(exc)
                return
            echo = framing.receive_data(data)
            if self._debug:
                log_conn.debug("received %r", data, extra={"tag": self.tag})
            if echo:
                self._encrypt(echo)
                if self._debug:
                    log_conn.debug("sent %r", echo, extra={"tag": self.tag})
            if framing.finished:
                self._send_out()
                if self._state is State.OPEN:
                    self._finish()
                return
            if not data or (not inc.pending and not inc.eof and not io.pending()):
                break  # all read (asking again would cost an SSLWantReadError)
        self._send_out()

    def _encrypt(self, data: bytes) -> None:
        """Into the outgoing BIO (OpenSSL takes it all: the BIO grows)."""
        try:
            self._io.write(data)
        except OSError as exc:
            self._close(exc)
            return
        self._written += len(data)
        self._echo_end = self._pushed + self._out.pending  # type: ignore[union-attr]

    def _write(self, data: bytes) -> None:
        self._encrypt(data)
        self._send_out()

    def _send_out(self) -> None:
        """Hand what OpenSSL wrote to the kernel: one send for all of it (a
        record fault may slice it or hold it back)."""
        out = self._out
        if out is None or not out.pending or self._state is State.CLOSED:
            return
        data = out.read()
        self._pushed += len(data)
        rfault = self._rfault
        if rfault is None:
            self._send_raw(data)
            return
        state = self._state
        phase = (
            "open"
            if state is State.OPEN
            else "handshake"
            if state is State.HANDSHAKE
            else "closing"
        )
        rfault.push(data, phase, self._loop.time())
        self._send_due()
        if (
            self._reading
            and state is State.OPEN
            and self._state is State.OPEN
            and self._wsize + rfault.pressure() > HIGH_WATER
        ):
            # Backpressure through the fault: what it holds back counts as
            # unsent echo (a client that never reads, in front of latency
            # or bandwidth, cannot grow our memory through the fault's queue).
            self._want_read(False)

    def _send_due(self) -> None:
        """The record fault's pieces that are due; a timer for the next."""
        rfault = self._rfault
        assert rfault is not None
        self._stimer = None
        for piece in rfault.due(self._loop.time()):
            if self._state is State.CLOSED:
                return
            self._send_raw(piece)
        when = rfault.next_due()
        if when is not None and self._state is not State.CLOSED:
            self._stimer = self._loop.call_at(when, self.guard, self._send_due)
        elif self._state is State.CLOSING and not self._wbuf:
            self._shutdown()  # the last piece is out: on with the close
        self._resume_if_drained()

    def _resume_if_drained(self) -> None:
        """Read again once the echo waiting to go out (send buffer and what a
        record fault holds) is under the low-water mark."""
        if self._state is not State.OPEN or self._reading:
            return
        held = self._rfault.pressure() if self._rfault is not None else 0
        if self._wsize + held <= LOW_WATER:
            self._want_read(True)

    def _send_raw(self, data: bytes) -> None:
        if not self._wbuf:
            try:
                n = self._raw.send(data)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self._send_failed(exc)
                return
            self._sent += n
            if n == len(data):
                return
            data = data[n:]
        self._wbuf.append(data)
        self._wsize += len(data)
        self._want_write(True)
        if self._wsize > HIGH_WATER and self._state is State.OPEN:
            self._want_read(False)  # backpressure: the peer does not read its echo

    def _flush(self) -> None:
        wbuf = self._wbuf
        while wbuf:
            data = wbuf[0]
            try:
                n = self._raw.send(data)
            except BlockingIOError:
                return
            except OSError as exc:
                self._send_failed(exc)
                return
            self._sent += n
            self._wsize -= n
            self._deadlines.last_io = self._loop.time()
            if n < len(data):
                wbuf[0] = data[n:]
                continue
            del wbuf[0]
        self._want_write(False)
        if self._state is State.CLOSING:
            self._shutdown()
        else:
            self._resume_if_drained()

    def _send_failed(self, exc: OSError) -> None:
        """The peer is gone. A reset ends the connection now (the kernel
        reports it once: the next read would only see an end of stream); a
        broken pipe while the session is open leaves it to the next read,
        which finds the peer's FIN (as on the SSLSocket engine)."""
        self._wbuf.clear()
        self._wsize = 0
        self._want_write(False)
        state = self._state
        if state is State.OPEN or state is State.HANDSHAKE:
            if not isinstance(exc, ConnectionResetError):
                return  # a broken pipe: the peer closed; its FIN is still to read
            if state is State.HANDSHAKE:  # the kernel says "reset" once: say it now
                self._outcome = Outcome.HANDSHAKE_FAILED
                self._close(exc)
                return
        self._close(exc if self._outcome is None else None)

    # -- closing --------------------------------------------------------------
    def _send_close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        """close_notify out; once it is sent, close if the peer's has come,
        else FIN and drain (closing with unread bytes would reset)."""
        done = False
        rfault = self._rfault
        try:
            if rfault is None or not rfault.truncate:  # truncate: no close_notify
                self._sock.unwrap()
                done = True
        except ssl.SSLError:
            # SSLWantReadError: ours is written, the peer's has not come. Any
            # other: data after our close_notify, discarded all the same.
            pass
        except OSError as exc:
            self._close(exc if self._outcome is None else None)
            return
        self._send_out()
        if self._state is not State.CLOSING:
            return  # the send failed
        if self._wbuf or (rfault is not None and rfault.next_due() is not None):
            self._want_read(False)
            return  # _flush() or _send_due() comes back here once it is out
        if done:
            self._close(self._linger_exc)
            return
        self._drain_after_close()

    def _linger(self, exc: BaseException) -> None:
        if self._wbuf:  # the alert: one more try to send it all
            self._flush()
        super()._linger(exc)

    # -- faults ---------------------------------------------------------------------
    def _record_fault(self, fault: FaultSpec) -> None:
        self._rfault = RecordFault(fault)

    # -- the end ----------------------------------------------------------------
    def _release(self) -> int:
        if self._stimer is not None:
            self._stimer.cancel()
            self._stimer = None
        self._raw.close()
        # Record bytes of echo that never left (what the kernel did not
        # take, a fault still held, or a failed send dropped): at least the
        # echo's plaintext, so the log never claims more than went out.
        return max(0, self._echo_end - self._sent)
