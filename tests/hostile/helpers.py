"""The hostile-input harness: a real ``tlsecho serve`` process, a canary client
that keeps one session open and checks every echoed byte throughout, and the
server's descriptors and memory measured before and after each case (the
fixture is in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import ServerProcess
from tlsecho.pki.certs import Pki

# Short limits so that timeouts happen within a test.
FAST = ["--handshake-timeout", "1", "--idle-timeout", "2", "--shutdown-timeout", "2"]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


CANARY_PROXY_HEADER = b"PROXY TCP4 198.51.100.7 192.0.2.1 7777 443\r\n"


def tls_connect(
    port: int, ca: Path, *, alpn: str | None = None, proxy_header: bytes = b""
) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    if alpn:
        ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    if proxy_header:
        raw.sendall(proxy_header)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def recv_exactly(s: ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def read_to_close(s: socket.socket) -> bytes:
    out = bytearray()
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return bytes(out)


def reset(s: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


class Canary(threading.Thread):
    """Keeps one session open, echoing random bytes (never NUL) and checking
    each one, until told to finish; then ends the message cleanly."""

    def __init__(self, port: int, ca: Path, mode: str, **kw: object) -> None:
        super().__init__(daemon=True)
        self.sock = tls_connect(port, ca, **kw)  # type: ignore[arg-type]
        self.mode = mode
        self.rounds = 0
        self.bytes = 0
        self.bad = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self.first_round = threading.Event()
        """Set once the first echo has come back whole (or the canary failed)."""

    def run(self) -> None:
        rng = random.Random(862)
        try:
            while not self._stop_event.is_set():
                data = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 3000)))
                if self.mode == "line":  # whole lines only, each under --max-line
                    data = data.replace(b"\n", b"")[:900] + b"\n"
                self.sock.sendall(data)
                got = recv_exactly(self.sock, len(data))
                self.bad += sum(a != b for a, b in zip(got, data, strict=False))
                self.bad += abs(len(got) - len(data))
                self.rounds += 1
                self.bytes += len(data)
                self.first_round.set()
                self._stop_event.wait(0.02)
        except BaseException as exc:  # reported by finish()
            self.error = exc
            self.first_round.set()

    def finish(self) -> None:
        """Stop, check every byte was right, end the session cleanly (once)."""
        if self._stop_event.is_set():
            return
        self._stop_event.set()
        self.join(30)
        assert self.error is None, f"canary failed: {self.error!r}"
        assert self.bad == 0, f"canary saw {self.bad} wrong bytes"
        assert self.rounds > 0
        if self.mode == "nul":
            self.sock.sendall(b"\x00")
            assert read_to_close(self.sock) == b""  # close_notify, no extra byte
        else:
            self.sock.unwrap()  # close_notify ends a persistent session
        self.sock.close()


@dataclass
class Harness:
    server: ServerProcess
    pki: Pki
    canary: Canary | None
    fds: int = 0
    rss: int = 0
    extra: list[ServerProcess] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    @property
    def ca(self) -> Path:
        return self.pki.ca.cert

    def connect(self, **kw: object) -> ssl.SSLSocket:
        return tls_connect(self.port, self.ca, **kw)  # type: ignore[arg-type]

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=20)

    def logged(self, pattern: str, count: int = 1, timeout: float = 15) -> list[str]:
        """Wait for log lines (messages other than a connection's record)."""
        return self.server.wait_for(pattern, timeout=timeout, count=count)

    def connection(
        self, count: int = 1, timeout: float = 15, **want: object
    ) -> list[dict[str, Any]]:
        """Wait for connection records (JSON) with these fields (see
        :meth:`ServerProcess.wait_for_record`)."""
        return self.server.wait_for_record(count=count, timeout=timeout, event="connection", **want)

    def settle(self, timeout: float = 15, rss_slack_kib: int = 40 * 1024) -> None:
        """The server is up and back to its baseline of descriptors, and its
        memory stayed bounded."""
        assert self.server.proc.poll() is None, "the server died"
        deadline = time.monotonic() + timeout
        while fd_count(self.pid) > self.fds and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fd_count(self.pid) <= self.fds, f"{fd_count(self.pid)} fds, baseline {self.fds}"
        if rss_slack_kib:
            assert rss_kib(self.pid) <= self.rss + rss_slack_kib, (
                f"RSS {rss_kib(self.pid)} KiB, baseline {self.rss} KiB"
            )


def client_hello() -> bytes:
    """A real TLS ClientHello, as bytes (made with an in-memory SSLObject)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def odd_groups(hello: bytes) -> bytes:
    """The ClientHello with its supported_groups list length off by one."""
    from tlsecho.wire.clienthello import parse_client_hello

    ch = parse_client_hello(hello)
    data = ch.extension_data[ch.extension_types.index(0x000A)]
    ext = b"\x00\x0a" + len(data).to_bytes(2, "big") + data
    assert hello.count(ext) == 1
    return hello.replace(ext, ext[:4] + (len(data) - 1).to_bytes(2, "big") + data[2:])
