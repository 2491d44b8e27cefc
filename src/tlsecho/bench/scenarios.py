"""The load generator's scenarios, each a small class over :class:`BioConnection`.

- :class:`Pingpong`: one connection per slot, one message at a time, latency
  per message (closed loop, or open loop at a rate);
- :class:`Connect`: a new TLS connection per message, as the original client
  does (mode nul: the message and its NUL, then the server's EOF);
- :class:`Stream`: continuous data with a window of echo bytes in flight.
"""

from __future__ import annotations

import random
import ssl

from tlsecho.bench.engine import CLOCK, diff
from tlsecho.bench.tlsbio import READ_SIZE, BioConnection

__all__ = ["Connect", "Pingpong", "Stream"]

_STREAM_WINDOW = 256 * 1024  # echo bytes in flight per stream connection


class Pingpong(BioConnection):
    """One message at a time on one connection; the next once the echo is in."""

    __slots__ = ()

    def _exchange(self, now: int) -> None:
        self.handler = self._on_echo
        w = self.w
        if w.spec.rate is None:
            self.send_next(now)
        else:
            # Open loop: the first message at a random phase in the interval.
            self.due = now + int(random.random() * w.interval)
            w.call_at(self.due, self)

    def _op_start(self, now: int) -> int:
        """When the operation's latency counts from."""
        w = self.w
        if w.spec.rate is None:
            return now
        # Latency counts from when the message was due, not when it could
        # go: a stalled server cannot hide behind a late send.
        if now - self.due > w.interval and w.measuring(now):
            w.stats.late += 1
        return self.due

    def _wire(self, msg: bytes) -> bytes:
        """What goes on the wire for a message."""
        return msg

    def send_next(self, now: int) -> None:
        """Send the next message (closed loop: now; open loop: it is due)."""
        w = self.w
        if w.stopping or w.budget_spent():
            self._end_session()
            return
        w.started += 1
        self.msg = w.next_payload()
        self.got = 0
        self.progress = now
        self.t_op = self._op_start(now)
        self._write(self._wire(self.msg))

    def _eof_reason(self) -> str:
        return "short echo"

    def _on_echo(self, events: int) -> None:
        if not self._fill(events):
            return
        read = self.tls.read
        while True:
            try:
                data = read(READ_SIZE)
            except ssl.SSLWantReadError:
                self._send_out()  # a TLS 1.3 KeyUpdate reply, say
                return
            except OSError as exc:
                self._failed(exc)
                return
            w = self.w
            if not data:
                self._failed(self._eof_reason())
                return
            got = self.got
            n = len(data)
            msg = self.msg
            now = self.progress = CLOCK()
            if not got:
                self._first_byte(now)
            if data != msg[got : got + n]:
                w.stats.mismatched += diff(data, msg[got : got + n])
            got += n
            self.got = got
            if got >= len(msg):
                self._completed(now)
                return

    def _first_byte(self, now: int) -> None:
        """The echo's first byte is in (the connect scenario times it)."""

    def _completed(self, now: int) -> None:
        w = self.w
        if w.measuring(now):
            st = w.stats
            st.latency.record(now - self.t_op)
            st.ops += 1
            st.bytes += len(self.msg)
            w.tick(now)
        self._after_echo(now)

    def _after_echo(self, now: int) -> None:
        w = self.w
        if w.spec.rate is None:
            self.send_next(now)
        else:
            self.due += w.interval
            if self.due <= now:
                self.send_next(now)
            else:
                w.call_at(self.due, self)

    def on_timer(self, now: int) -> None:
        if self.fd < 0 and not self.dead:
            self.open()
        elif self.handler == self._on_echo:
            self.send_next(now)

    def idle(self) -> bool:
        return self.handler == self._on_echo and self.got >= len(self.msg)

    def stop(self) -> None:
        # A message in flight ends the session from _completed().
        if self.idle():
            self._end_session()


class Connect(Pingpong):
    """A new TLS connection for each message; latency per connection."""

    __slots__ = ()

    def _exchange(self, now: int) -> None:
        self.handler = self._on_echo
        self.send_next(now)

    def _op_start(self, now: int) -> int:
        # From the TCP connect, or in open loop from when it was due.
        return self.t_connect if self.w.spec.rate is None else self.due

    def _wire(self, msg: bytes) -> bytes:
        return msg + b"\x00" if self.w.spec.mode == "nul" else msg

    def _first_byte(self, now: int) -> None:
        w = self.w
        if w.measuring(now) and self.t_handshake:
            # From the handshake's end: the message goes right after it.
            w.stats.phase(self.phase_key(), "first_byte", now - self.t_handshake)

    def _eof_reason(self) -> str:
        if self.got or self.w.spec.mode != "nul":
            return "short echo"
        return "closed before echoing"

    def _after_echo(self, now: int) -> None:
        if self.w.spec.mode == "nul":
            # The server ends the session after the NUL: read to its EOF
            # (its close_notify may be in the BIO already).
            self.handler = self._on_end
            self._on_end(0)
        else:
            self._end_session()

    def _ends_with_nul(self) -> bool:
        return False  # the NUL went with the message

    def _retry(self) -> bool:
        return not self.w.stopping

    def _next_connection(self) -> bool:
        w = self.w
        if w.stopping or w.budget_spent():
            return False
        if w.spec.rate is None:
            self.open()
            return True
        self.due += w.interval
        now = CLOCK()
        if self.due <= now:
            if now - self.due > w.interval and w.measuring(now):
                w.stats.late += 1
            self.open()
        else:
            w.call_at(self.due, self)
        return True


class Stream(BioConnection):
    """Continuous data: the echo is checked byte for byte as it streams back."""

    __slots__ = ()

    def _exchange(self, now: int) -> None:
        self.handler = self._on_stream
        self._fill_window()

    def _fill_window(self) -> None:
        w = self.w
        chunk = w.chunk
        while not self.wbuf and self.sent - self.received < _STREAM_WINDOW and not w.stopping:
            self._write(chunk)
            self.sent += len(chunk)

    def _on_stream(self, events: int) -> None:
        if not self._fill(events):
            return
        w = self.w
        read = self.tls.read
        twice = w.chunk_twice
        n = len(w.chunk)
        while True:
            try:
                data = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except OSError as exc:
                self._failed(exc)
                return
            if not data:
                self._failed("short echo")
                return
            now = self.progress = CLOCK()
            start = self.received % n
            size = len(data)
            if size <= n:
                want = twice[start : start + size]
            else:
                want = (w.chunk * (size // n + 2))[start : start + size]
            if data != want:
                w.stats.mismatched += diff(data, want)
            self.received += size
            if self.received > self.sent:
                w.stats.mismatched += self.received - self.sent  # more than we sent
            if w.measuring(now):
                w.stats.bytes += size
                done = (self.received // n) - ((self.received - size) // n)
                if done:
                    w.stats.ops += done
                    w.tick(now, done)
        if w.stopping:
            if self.received >= self.sent and not self.wbuf:
                self._end_session()
        else:
            self._fill_window()

    def stop(self) -> None:
        if self.received >= self.sent and not self.wbuf:
            self._end_session()
