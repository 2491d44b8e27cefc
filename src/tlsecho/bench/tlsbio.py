"""One load-generator connection: TLS over memory BIOs on a non-blocking socket.

OpenSSL never touches the socket: one ``recv`` brings every record that has
arrived into the worker's shared buffer (OpenSSL on a socket reads each record
with two calls, header then body), and one ``send`` takes every record a write
made. :class:`BioConnection` is the plumbing (connect, handshake, reads and
writes, the end of a session); a scenario (:mod:`tlsecho.bench.scenarios`)
says what is exchanged once the handshake is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import ssl
from collections.abc import Callable
from typing import Any

from tlsecho.bench.engine import CLOCK, Worker
from tlsecho.errors import failure_reason
from tlsecho.wire.proxy_protocol import build_header

__all__ = ["IN", "OUT", "READ_SIZE", "BioConnection", "error_kind"]

IN = select.EPOLLIN
OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
READ_SIZE = 65536


def error_kind(exc: BaseException) -> str:
    """How the bench names an error: the server's phrases, with the two that
    matter to a client said its way."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"handshake: {exc.verify_message or 'certificate verify failed'}"
    if isinstance(exc, ssl.SSLEOFError):
        return "closed without close_notify"
    return failure_reason(exc)


class BioConnection:
    """One connection slot on the worker's epoll; subclasses are scenarios."""

    __slots__ = (
        "dead",
        "due",
        "fd",
        "got",
        "handler",
        "inc",
        "mask",
        "msg",
        "out",
        "progress",
        "received",
        "sent",
        "session",
        "sock",
        "t_connect",
        "t_handshake",
        "t_op",
        "t_tcp",
        "tls",
        "tries",
        "w",
        "wbuf",
    )

    def __init__(self, w: Worker) -> None:
        self.w = w
        self.sock: Any = None
        self.tls: Any = None  # ssl.SSLObject over the two memory BIOs
        self.inc = self.out = ssl.MemoryBIO()
        self.fd = -1
        self.mask = 0
        self.handler: Callable[[int], None] = self._on_connected
        self.session: ssl.SSLSession | None = None
        self.msg = b""
        self.got = 0
        self.sent = 0
        self.received = 0
        self.wbuf = b""
        self.t_connect = 0
        self.t_tcp = 0  # TCP connected
        self.t_handshake = 0  # TLS handshake done
        self.tries = 0  # handshakes begun (for --resume-ratio)
        self.t_op = 0
        self.due = 0  # open loop: the intended time of the next operation
        self.progress = 0
        self.dead = False

    # -- what a scenario decides ------------------------------------------------
    def _exchange(self, now: int) -> None:
        """The handshake is done: start the scenario's exchange."""
        raise NotImplementedError

    def stop(self) -> None:
        """The run is over: end the session once the exchange in flight is done."""
        raise NotImplementedError

    def idle(self) -> bool:
        """Waiting for nothing from the server (open loop: for the next due time)."""
        return False

    def _retry(self) -> bool:
        """After a failure: make a new connection (True) or give up the slot."""
        return False

    def _next_connection(self) -> bool:
        """After a clean end of session: open the slot's next connection?"""
        return False

    def _ends_with_nul(self) -> bool:
        """Whether the session ends with a NUL of its own (mode nul)."""
        return bool(self.w.spec.mode == "nul")

    def on_timer(self, now: int) -> None:
        """A timer this connection asked for is due."""
        if self.fd < 0 and not self.dead:
            self.open()  # the slot's next connection

    # -- plumbing -------------------------------------------------------------
    def _watch(self, mask: int) -> None:
        if mask != self.mask:
            self.w.ep.modify(self.fd, mask)
            self.mask = mask

    def open(self) -> None:
        """A new TCP connection (non-blocking connect)."""
        w = self.w
        spec = w.spec
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.t_connect = self.progress = CLOCK()
        if spec.rate is not None and not self.due:
            self.due = self.t_connect  # open loop: the slot's first connection is due now
        err = sock.connect_ex(spec.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._failed(OSError(err, os.strerror(err)))
            return
        self.sock = sock
        self.fd = sock.fileno()
        self.mask = OUT
        self.handler = self._on_connected
        w.ep.register(self.fd, OUT)
        w.conns[self.fd] = self

    def close(self) -> None:
        if self.fd >= 0:
            w = self.w
            w.conns.pop(self.fd, None)
            with contextlib.suppress(OSError):
                w.ep.unregister(self.fd)
            self.fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def fail(self, reason: str) -> None:
        """The worker gave up on this connection (``reason``: ``timeout``)."""
        self._failed(reason)

    def _failed(self, exc: BaseException | str) -> None:
        """Count the error; the slot starts over or stops. Errors count in the
        warm-up and the wind-down too, like wrong bytes: a server that fails
        there has failed all the same."""
        w = self.w
        w.stats.error(exc if isinstance(exc, str) else error_kind(exc))
        self.close()
        if self._retry():
            w.call_at(CLOCK() + _RETRY_DELAY, self)
        else:
            self.dead = True
            w.slot_done()

    def _write(self, data: bytes) -> None:
        """Encrypt and send; what the socket cannot take now waits for EPOLLOUT."""
        self.tls.write(data)
        self._send_out()

    def _send_out(self) -> None:
        data = self.out.read()
        if not data:
            return
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = 0  # the next read reports what happened to the connection
        if n < len(data):
            self.wbuf = data[n:]
            self._watch(IN | OUT)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self.wbuf)
        except BlockingIOError:
            return
        except OSError:
            n = len(self.wbuf)
        self.wbuf = self.wbuf[n:]
        if not self.wbuf:
            self._watch(IN)

    def _fill(self, events: int) -> bool:
        """Move what the socket holds into OpenSSL; False if the connection failed."""
        if self.wbuf and events & OUT:
            self._flush()
        if not events & (IN | _ERR):
            return True
        w = self.w
        try:
            n = self.sock.recv_into(w.buf)
        except BlockingIOError:
            return True
        except OSError as exc:
            self._failed(exc)
            return False
        if n:
            self.inc.write(w.view[:n])
        else:
            self.inc.write_eof()
        return True

    # -- connect and handshake --------------------------------------------------
    def _on_connected(self, events: int) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(OSError(err, os.strerror(err)))
            return
        w = self.w
        spec = w.spec
        self.t_tcp = CLOCK()
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            if spec.proxy_header:
                src, dst = self.sock.getsockname()[:2], self.sock.getpeername()[:2]
                # A few bytes into an empty buffer.
                self.sock.send(build_header(spec.proxy_header, src, dst))
            self.tls = w.ctx.wrap_bio(
                self.inc,
                self.out,
                server_hostname=spec.server_hostname,
                session=self.session if self._resume_now() else None,
            )
        except (OSError, ValueError) as exc:
            self._failed(exc)
            return
        self._watch(IN)
        self.handler = self._on_handshake
        self._on_handshake(0)

    def _resume_now(self) -> bool:
        """Offer the last session on this handshake? Exactly ``resume_ratio``
        of them do, spread evenly (the first has no session to offer)."""
        ratio = self.w.spec.resume_ratio
        self.tries += 1
        return int(self.tries * ratio) > int((self.tries - 1) * ratio)

    def phase_key(self) -> str:
        """``TLSv1.3 full`` or ``TLSv1.3 resumed``: what the phases are split by."""
        kind = "resumed" if self.tls.session_reused else "full"
        return f"{self.tls.version()} {kind}"

    def _on_handshake(self, events: int) -> None:
        if not self._fill(events):
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except OSError as exc:
            self._failed(exc)
            return
        self._send_out()
        w = self.w
        now = self.progress = self.t_handshake = CLOCK()
        if w.measuring(now):
            st = w.stats
            st.handshake.record(now - self.t_connect)
            st.connections_made += 1
            if self.tls.session_reused:
                st.resumed += 1
            key = self.phase_key()
            st.phase(key, "tcp_connect", self.t_tcp - self.t_connect)
            st.phase(key, "tls_handshake", now - self.t_tcp)
        if w.stopping:
            self._end_session()
        else:
            self._exchange(now)

    # -- the end of a session ------------------------------------------------------
    def _end_session(self) -> None:
        """nul: send the NUL and read to the server's EOF (nothing may come
        back); otherwise close_notify, and wait for the server's."""
        if self.handler == self._on_end or self.handler == self._on_shutdown:
            return
        if self._ends_with_nul():
            self.handler = self._on_end
            self._write(b"\x00")
            return
        self.handler = self._on_shutdown
        self._on_shutdown(0)

    def _on_shutdown(self, events: int) -> None:
        if not self._fill(events):
            return
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            self._send_out()
            return
        except (ssl.SSLError, OSError):
            pass  # the server closed first, or sent data after the end: over
        self._send_out()
        self._session_over()

    def _on_end(self, events: int) -> None:
        if not self._fill(events):
            return
        while True:
            try:
                data = self.tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLEOFError:
                data = b""  # FIN without close_notify: still the end
            except OSError as exc:
                self._failed(exc)
                return
            if data:
                self.w.stats.mismatched += len(data)  # nothing may follow the echo
                continue
            self._session_over()
            return

    def _session_over(self) -> None:
        w = self.w
        if w.spec.resume and self.tls is not None:
            self.session = self.tls.session
        self.close()
        if not self._next_connection():
            self.dead = True
            w.slot_done()


_RETRY_DELAY = 10_000_000  # ns after a failed connection, before the next one
