"""The hostile-input harness: a real ``tlsecho serve`` process, a canary client
that keeps one session open and checks every echoed byte throughout, and the
server's descriptors and memory measured before and after each case."""

from __future__ import annotations

import os
import random
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server
from tlsecho.certs import Pki

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
                self._stop_event.wait(0.02)
        except BaseException as exc:  # reported by finish()
            self.error = exc

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
        return self.server.wait_for(pattern, timeout=timeout, count=count)

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


@pytest.fixture
def hostile(ca_pki: Pki) -> Iterator[Callable[..., Harness]]:
    """Start a server with the given extra arguments, its canary, and baselines."""
    made: list[Harness] = []
    # The clients of some cases need thousands of descriptors too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def make(*args: str, canary: bool = True, prefix: tuple[str, ...] = ()) -> Harness:
        srv = start_server(
            "--cert",
            str(ca_pki.server.cert),
            "--key",
            str(ca_pki.server.key),
            *FAST,
            *args,
            prefix=prefix,
        )

        def arg(name: str) -> str | None:
            return args[args.index(name) + 1] if name in args else None

        # The canary speaks what the server demands of every client.
        bird = Canary(
            srv.port,
            ca_pki.ca.cert,
            arg("--mode") or "nul",
            alpn=(arg("--alpn") or "").split(",")[0] or None,
            proxy_header=CANARY_PROXY_HEADER if arg("--proxy-protocol") else b"",
        )
        if canary:
            bird.start()
        else:
            bird.sock.close()
        h = Harness(srv, ca_pki, bird if canary else None)
        made.append(h)
        time.sleep(0.2)  # let the canary's session settle into its steady state
        h.fds, h.rss = fd_count(h.pid), rss_kib(h.pid)
        return h

    yield make
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for h in made:
        if h.canary is not None:
            h.canary.finish()
        if h.server.proc.poll() is None:  # (unless the case stopped it)
            h.settle(rss_slack_kib=0)  # each case checks its own memory bound
        rc = h.server.stop()
        text = "\n".join(h.server.lines())
        assert "Traceback" not in text, text
        assert rc == 0, text
        # Every connection ended with exactly one "done" line; the summary
        # at shutdown counts them by outcome.
        done = [ln for ln in h.server.lines() if ": done peer=" in ln]
        summary = next(ln for ln in h.server.lines() if ln.startswith("main: served "))
        assert summary.startswith(f"main: served {len(done)} connections ("), summary
