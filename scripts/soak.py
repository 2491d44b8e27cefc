#!/usr/bin/env python3
"""Soak: one server under long load, per surface.

    make soak MINUTES=10 SOAK_MODE=nul   (or: python scripts/soak.py --minutes 10 --mode nul)

``--mode nul`` (the default): pingpong, new connections and hostile clients
against ``serve``. The other modes drive ``serve`` with ``tlsecho bench``
(every byte verified) in slices of 30 s, 8 connections: ``raw`` (``--mode
raw`` pingpong), ``http1`` and ``h2`` (``--mode http``, keep-alive requests
over HTTP/1.1 or HTTP/2), ``fault`` (``--engine membio --fault
latency=1``, a record fault on every connection).

Reports the server's RSS and descriptors at start, after the first tenth
(warm) and at the end, bytes echoed, wrong bytes (must be 0) and errors by
kind. Exits 1 if any byte was wrong, the server died or logged a traceback,
its descriptors did not return to the baseline, or its RSS grew by more than
``--rss-slack`` MiB after the warm-up (flat memory).
"""

from __future__ import annotations

import argparse
import collections
import json
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


#: Per mode: the server's extra options and the bench options of its load
#: (None: the threads of mode nul).
MODES: dict[str, tuple[list[str], list[str] | None]] = {
    "nul": ([], None),
    "raw": (["--mode", "raw"], ["--scenario", "pingpong", "--mode", "raw", "-s", "1024"]),
    "http1": (["--mode", "http"], ["--scenario", "http", "--alpn", "http/1.1", "-s", "1024"]),
    "h2": (["--mode", "http"], ["--scenario", "http", "--alpn", "h2", "-s", "1024"]),
    "fault": (
        ["--engine", "membio", "--fault", "latency=1"],
        ["--scenario", "pingpong", "-s", "1024"],
    ),
}
SLICE_SECONDS = 30.0


def bench_load(port: int, ca: str, opts: list[str], stats: Stats, stop: float) -> None:
    """``tlsecho bench`` in slices until ``stop``: every byte verified."""
    while (left := stop - time.monotonic()) > 1:
        cmd = [TLSECHO, "bench", f"127.0.0.1:{port}", "--servername", "localhost"]
        cmd += ["--cafile", ca, "-c", "8", "--warmup", "0", "--json", *opts]
        cmd += ["-d", f"{min(SLICE_SECONDS, left):.1f}"]
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            stats.error(f"bench exit {p.returncode}: {p.stderr.strip()[-200:]}")
            continue
        stats.add(echoed=doc["bytes_verified"], corrupted=doc["mismatched_bytes"])
        stats.add(sessions=doc["operations"])
        for kind, n in doc["errors"].items():
            for _ in range(n):
                stats.error(f"bench {kind}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--mode", choices=sorted(MODES), default="nul")
    ap.add_argument("--pingpong", type=int, default=4, help="mode nul: pingpong client threads")
    ap.add_argument(
        "--rss-slack", type=float, default=8.0, help="MiB the RSS may grow after the warm-up"
    )
    args = ap.parse_args()
    server_opts, bench_opts = MODES[args.mode]
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
                    *server_opts,
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
        if bench_opts is None:
            threads = [
                threading.Thread(target=pingpong, args=(port, ctx, stats, stop, i))
                for i in range(args.pingpong)
            ]
            threads.append(threading.Thread(target=new_connections, args=(port, ctx, stats, stop)))
            threads.append(threading.Thread(target=hostile, args=(port, ctx, stats, stop)))
        else:
            load = (port, f"{tmp}/ca.crt", bench_opts, stats, stop)
            threads = [threading.Thread(target=bench_load, args=load)]
        for t in threads:
            t.start()
        peak = rss0
        warm_at = started + (stop - started) / 10
        rss_warm = 0
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            if proc.poll() is None:
                rss_now = proc_stat(proc.pid)[0]
                peak = max(peak, rss_now)
                if not rss_warm and time.monotonic() >= warm_at:
                    rss_warm = rss_now
        alive = proc.poll() is None
        time.sleep(3)  # let the hostile connections' timeouts expire
        rss1, fds1 = proc_stat(proc.pid) if alive else (0, 0)
        proc.terminate()
        rc = proc.wait(60)
        text = log.read_text()
        elapsed = time.monotonic() - started
        outcomes = [ln for ln in text.splitlines() if ln.startswith("main: served ")]
        print(
            f"soak: {elapsed / 60:.1f} minutes, mode {args.mode}, against tlsecho serve"
            f" {' '.join(server_opts)} (pid {proc.pid})".replace("  (", " (")
        )
        grown = rss1 - (rss_warm or rss0)
        print(
            f"  server RSS: {rss0} KiB at start, {rss_warm} KiB warm (a tenth in),"
            f" {rss1} KiB at end ({grown:+} KiB after the warm-up), {peak} KiB peak"
        )
        print(f"  server fds: {fds0} at start, {fds1} at end")
        what = "sessions" if bench_opts is None else "requests/messages"
        print(f"  {what}: {stats.sessions}, bytes echoed: {stats.echoed}")
        print(f"  wrong bytes: {stats.corrupted}")
        print(f"  client-side errors: {dict(stats.errors) or 'none'}")
        print(f"  server: {outcomes[0] if outcomes else '(no summary)'}; exit {rc}")
        ok = alive and rc == 0 and stats.corrupted == 0 and fds1 <= fds0
        ok = ok and "Traceback" not in text and grown <= args.rss_slack * 1024
        ok = ok and stats.sessions > 0
        print(f"soak: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
