#!/usr/bin/env python3
"""tlsecho's server against an earlier version of itself, side by side.

    python benchmarks/ab.py --before REV [--rounds 5] [--duration 3]
        [--before-args "..."] [--after-args "..."]

Checks out REV into a temporary git worktree and runs both servers from
source (``PYTHONPATH``), with this checkout's ``tlsecho bench`` as the load:
each server alone, pinned to core 0, the load on core 1, rows and servers
interleaved round by round so a noisy moment hurts both alike. Reports the
median server CPU time (user + system, from /proc) per operation and the
ratio after/before. For a change that must not cost speed (a refactoring);
with ``--before HEAD`` and server options on one side (``--after-args
--no-fingerprint``), what one option costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from compare import build_go_load  # benchmarks/compare.py, beside this file

TIMES = "\u00d7"
ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
ROWS = {
    "pingpong 64 B, 16 conns": ["-c", "16"],
    "new connection per message, ECDSA P-256": ["--scenario", "connect", "-c", "8"],
    "new connection per message, TLS 1.3 resumption": [
        "--scenario",
        "connect",
        "-c",
        "8",
        "--resume",
    ],
}


LOG_LEVEL = ["warning"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(src: Path, port: int, pki: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"}
    env["PYTHONPATH"] = str(src)
    cmd = ["taskset", "-c", "0", str(BIN / "python"), "-m", "tlsecho", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"]
    cmd += ["--cert", str(pki / "server.crt"), "--key", str(pki / "server.key")]
    # Logs go nowhere: at --log-level info (the default) the server still
    # formats and writes every connection's line, as it does in real use.
    proc = subprocess.Popen(
        [*cmd, "--log-level", LOG_LEVEL[0], *extra], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # ready once it accepts
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server from {src} did not start")


def measure(
    src: Path,
    port: int,
    pki: Path,
    args: list[str],
    duration: float,
    extra: list[str],
    client: list[str],
) -> float:
    proc = serve(src, port, pki, extra)
    try:
        before = cpu_seconds(proc.pid)
        cmd = ["taskset", "-c", "1", *client, "--host", "localhost"]
        cmd += ["--port", str(port), "--cafile", str(pki / "ca.crt"), "--json"]
        cmd += ["--duration", str(duration), "--warmup", "0", *args]
        out = subprocess.run(cmd, capture_output=True, timeout=duration + 120, check=True)
        used = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(15)
    ops = int(json.loads(out.stdout)["operations"])
    return used / ops * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="the git revision to compare against")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument(
        "--log-level",
        default="warning",
        help="the servers' log level (info: a line per connection, as by default)",
    )
    ap.add_argument(
        "--client",
        choices=["tlsecho", "go"],
        default="tlsecho",
        help="the load: tlsecho bench, or the compiled go_load (needs go)",
    )
    ap.add_argument("--before-args", default="", help="options for the before server")
    ap.add_argument("--after-args", default="", help="options for the after server")
    args = ap.parse_args()
    LOG_LEVEL[0] = args.log_level
    with tempfile.TemporaryDirectory(prefix="tlsecho-ab-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old),
                        args.before], check=True)  # fmt: skip
        try:
            pki = Path(tmp) / "pki"
            subprocess.run([str(BIN / "tlsecho"), "cert", "--ca", "--out", str(pki)],
                           check=True, capture_output=True)  # fmt: skip
            trees = {"before": old / "src", "after": ROOT / "src"}
            client = [str(BIN / "tlsecho"), "bench"]
            if args.client == "go":
                go_load = build_go_load(Path(tmp))
                if go_load is None:
                    raise SystemExit("ab.py --client go needs go (make bench-tools)")
                client = go_load
            extra = {"before": shlex.split(args.before_args), "after": shlex.split(args.after_args)}
            cost: dict[tuple[str, str], list[float]] = {}
            port = 19400
            for rnd in range(args.rounds):
                for row, row_args in ROWS.items():
                    for name, src in trees.items():
                        port += 1
                        us = measure(src, port, pki, row_args, args.duration, extra[name], client)
                        cost.setdefault((row, name), []).append(us)
                        print(f"round {rnd + 1} {row:48} {name:6} {us:8.1f} µs/op", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)  # fmt: skip
    before = " ".join([args.before, args.before_args]).strip()
    after = " ".join(["after", args.after_args]).strip()
    print(f"\n| row (median of {args.rounds}) | before ({before}) | {after} | after / before |")
    print("|---|---|---|---|")
    for row in ROWS:
        b, a = (statistics.median(cost[(row, n)]) for n in ("before", "after"))
        print(f"| {row} | {b:,.1f} µs | {a:,.1f} µs | {a / b:.2f}{TIMES} |")


if __name__ == "__main__":
    main()
