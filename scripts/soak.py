#!/usr/bin/env python3
"""Soak: pingpong, new connections and hostile clients against one server.

    make soak MINUTES=10        (or: python scripts/soak.py --minutes 10)

Runs for the given time on loopback, then reports the server's RSS and
descriptors at start and end, bytes echoed, corrupted bytes (must be 0) and
errors by kind. Exits 1 if any byte was corrupted, the server died or logged
a traceback, or its descriptors did not return to the baseline.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TLSECHO = str(ROOT / ".venv" / "bin" / "tlsecho")


def proc_stat(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.echoed = 0
        self.corrupted = 0
        self.sessions = 0
        self.errors: collections.Counter[str] = collections.Counter()

    def add(self, echoed: int = 0, corrupted: int = 0, sessions: int = 0) -> None:
        with self.lock:
            self.echoed += echoed
            self.corrupted += corrupted
            self.sessions += sessions

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


def recv_exactly(s: ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def diff(a: bytes, b: bytes) -> int:
    return sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))


def pingpong(port: int, ctx: ssl.SSLContext, stats: Stats, stop: float, seed: int) -> None:
    """Persistent nul sessions of a few hundred messages each."""
    rng = random.Random(seed)
    while time.monotonic() < stop:
        try:
            with ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=30),
                server_hostname="localhost",
            ) as s:
                for _ in range(rng.randrange(50, 500)):
                    data = rng.randbytes(rng.randrange(1, 16384)).replace(b"\x00", b"\x01")
                    s.sendall(data)
                    got = recv_exactly(s, len(data))
                    stats.add(echoed=len(got), corrupted=diff(got, data))
                    if time.monotonic() >= stop:
                        break
                s.sendall(b"\x00")
                if s.recv(1) != b"":
                    stats.add(corrupted=1)
                stats.add(sessions=1)
        except (OSError, ssl.SSLError) as exc:
            stats.error(f"pingpong {type(exc).__name__}")


def new_connections(port: int, ctx: ssl.SSLContext, stats: Stats, stop: float) -> None:
    """One message per connection, as the original client does."""
    n = 0
    while time.monotonic() < stop:
        n += 1
        msg = f"message {n}".encode()
        try:
            with ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=30),
                server_hostname="localhost",
            ) as s:
                s.sendall(msg + b"\x00")
                got = b""
                while chunk := s.recv(100):
                    got += chunk
                stats.add(echoed=len(got), corrupted=diff(got, msg), sessions=1)
        except (OSError, ssl.SSLError) as exc:
            stats.error(f"connect {type(exc).__name__}")


def hostile(port: int, ctx: ssl.SSLContext, stats: Stats, stop: float) -> None:
    """A rotation of bad clients; only the server's survival is judged here."""
    rng = random.Random(4)
    cases = ["http", "garbage", "reset-mid-message", "silence", "no-close-notify"]
    while time.monotonic() < stop:
        case = rng.choice(cases)
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            if case == "http":
                raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
                raw.recv(100)
                raw.close()
            elif case == "garbage":
                raw.sendall(rng.randbytes(200))
                raw.recv(100)
                raw.close()
            elif case == "silence":
                time.sleep(0.2)
                raw.close()
            else:
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                s.sendall(b"partial")
                recv_exactly(s, 7)
                if case == "reset-mid-message":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01" + b"\x00" * 7)
                    s.close()
                else:
                    socket.socket.close(s)
            stats.add(sessions=1)
        except (OSError, ssl.SSLError) as exc:
            stats.error(f"hostile {case} {type(exc).__name__}")
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--pingpong", type=int, default=4, help="pingpong client threads")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tlsecho-soak-") as tmp:
        subprocess.run(
            [TLSECHO, "cert", "--ca", "--out", tmp], check=True, stdout=subprocess.DEVNULL
        )
        log = Path(tmp) / "server.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    TLSECHO,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--cert",
                    f"{tmp}/server.crt",
                    "--key",
                    f"{tmp}/server.key",
                    "--handshake-timeout",
                    "2",
                    "--idle-timeout",
                    "30",
                ],
                stderr=out,
            )
        port = 0
        while not port:
            time.sleep(0.05)
            for line in log.read_text().splitlines():
                if "listening on " in line:
                    port = int(line.rsplit(":", 1)[1])
            if proc.poll() is not None:
                print(log.read_text())
                return 1
        time.sleep(0.5)
        rss0, fds0 = proc_stat(proc.pid)
        ctx = ssl.create_default_context(cafile=f"{tmp}/ca.crt")
        stats = Stats()
        started = time.monotonic()
        stop = started + args.minutes * 60
        threads = [
            threading.Thread(target=pingpong, args=(port, ctx, stats, stop, i))
            for i in range(args.pingpong)
        ]
        threads.append(threading.Thread(target=new_connections, args=(port, ctx, stats, stop)))
        threads.append(threading.Thread(target=hostile, args=(port, ctx, stats, stop)))
        for t in threads:
            t.start()
        peak = rss0
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            if proc.poll() is None:
                peak = max(peak, proc_stat(proc.pid)[0])
        alive = proc.poll() is None
        time.sleep(3)  # let the hostile connections' timeouts expire
        rss1, fds1 = proc_stat(proc.pid) if alive else (0, 0)
        proc.terminate()
        rc = proc.wait(60)
        text = log.read_text()
        elapsed = time.monotonic() - started
        outcomes = [ln for ln in text.splitlines() if ln.startswith("main: served ")]
        print(f"soak: {elapsed / 60:.1f} minutes against tlsecho serve (pid {proc.pid})")
        print(f"  server RSS: {rss0} KiB at start, {rss1} KiB at end, {peak} KiB peak")
        print(f"  server fds: {fds0} at start, {fds1} at end")
        print(f"  sessions: {stats.sessions}, bytes echoed: {stats.echoed}")
        print(f"  corrupted bytes: {stats.corrupted}")
        print(f"  client-side errors: {dict(stats.errors) or 'none'}")
        print(f"  server: {outcomes[0] if outcomes else '(no summary)'}; exit {rc}")
        ok = alive and rc == 0 and stats.corrupted == 0 and fds1 <= fds0
        ok = ok and "Traceback" not in text
        print(f"soak: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
