#!/usr/bin/env python3
"""Side by side: tlsecho serve (uvloop, and the stdlib loop) against the
original example's server style, under the same load from ``tlsecho bench``.

    python benchmarks/compare.py [--duration 5] [--markdown]

Each server is pinned to core 0 and the load generator to core 1 (taskset),
one server at a time, each scenario run against every server in turn so that
a noisy moment hurts all of them alike. Reported: operations per second from
the load generator, and the server's CPU time per operation read from
/proc/PID/stat (the figure that does not depend on the client's speed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
TICK = os.sysconf("SC_CLK_TCK")

SCENARIOS = [
    ("pingpong 64 B, 16 conns", ["--scenario", "pingpong", "-c", "16", "-s", "64"]),
    ("pingpong 1 KiB, 16 conns", ["--scenario", "pingpong", "-c", "16", "-s", "1024"]),
    ("pingpong 16 KiB, 16 conns", ["--scenario", "pingpong", "-c", "16", "-s", "16384"]),
    ("stream 64 KiB, 4 conns", ["--scenario", "stream", "-c", "4", "-s", "65536"]),
    ("new connection per message", ["--scenario", "connect", "-c", "8", "-s", "64"]),
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    out = log.open("w")
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=out, stderr=subprocess.STDOUT)
    for _ in range(200):
        for line in log.read_text().splitlines():
            if "listening on " in line:
                return proc, int(line.rsplit(":", 1)[1])
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start: {log.read_text()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tlsecho-bench-"))
    subprocess.run(
        [BIN / "tlsecho", "cert", "--ca", "--out", tmp], check=True, stdout=subprocess.DEVNULL
    )
    cert, key, ca = tmp / "server.crt", tmp / "server.key", tmp / "ca.crt"

    def tlsecho_serve(loop: str) -> list[str]:
        return [str(BIN / "tlsecho"), "serve", "--host", "127.0.0.1", "--port", "0",
                "--cert", str(cert), "--key", str(key), "--loop", loop]  # fmt: skip

    servers = {
        "tlsecho (uvloop)": tlsecho_serve("uvloop"),
        "tlsecho (asyncio)": tlsecho_serve("asyncio"),
        "original style": [
            str(BIN / "python"),
            str(ROOT / "benchmarks" / "original_style_server.py"),
            str(cert),
            str(key),
            "0",
        ],
    }
    results: dict[str, dict[str, tuple[float, float, bool]]] = {}
    for label, bench_args in SCENARIOS:
        for name, cmd in servers.items():
            log = tmp / f"{name.split()[0]}-{name.split()[-1].strip('()')}.log"
            proc, port = start(cmd, log)
            try:
                before = cpu_seconds(proc.pid)
                p = subprocess.run(
                    [
                        "taskset",
                        "-c",
                        "1",
                        str(BIN / "tlsecho"),
                        "bench",
                        "--host",
                        "localhost",
                        "--port",
                        str(port),
                        "--cafile",
                        str(ca),
                        "--json",
                        "--duration",
                        str(args.duration),
                        "--warmup",
                        "1",
                        *bench_args,
                    ],
                    capture_output=True,
                    timeout=args.duration + 120,
                    check=False,
                )
                cpu = cpu_seconds(proc.pid) - before
            finally:
                proc.terminate()
                proc.wait(30)
            r = json.loads(p.stdout)
            ops = r["operations"] or 1
            # CPU over warm-up + measurement, per measured op: scaled to the
            # measured share of the run.
            share = args.duration / (args.duration + 1)
            us_per_op = cpu * share / ops * 1e6
            value = r["megabytes_per_second"] if "stream" in label else r["operations_per_second"]
            results.setdefault(label, {})[name] = (value, us_per_op, bool(r["ok"]))
            print(
                f"{label:<28} {name:<18} {value:>10} {'MB/s' if 'stream' in label else 'op/s':<5}"
                f" server CPU {us_per_op:8.1f} us/op  ok={r['ok']}",
                file=sys.stderr,
            )
    if args.markdown:
        names = list(servers)
        print("| scenario | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for label, row in results.items():
            unit = "MB/s" if "stream" in label else "op/s"
            cells = [
                f"{row[n][0]:,.0f} {unit}, {row[n][1]:.1f} µs CPU/op"
                + ("" if row[n][2] else " (errors)")
                for n in names
            ]
            print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
