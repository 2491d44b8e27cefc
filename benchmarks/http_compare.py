#!/usr/bin/env python3
"""tlsecho's HTTPS mode against well-known Python ASGI servers, side by side:
the HTTP rows of ``make bench`` and BENCHMARKS.md.

    python benchmarks/http_compare.py [--duration 4] [--rounds 3] [--write BENCHMARKS.md]

Servers (each alone, pinned to core 0; the load pinned to core 1), all
answering ``GET /health`` with the same 20-byte JSON over TLS 1.3 (ECDSA
P-256): ``tlsecho serve --mode http`` on uvloop; uvicorn with h11 on uvloop
(HTTP/1.1); hypercorn (HTTP/1.1 through h11, HTTP/2 through h2) on uvloop.
The ASGI app is benchmarks/peers/asgi_health.py.

Loads: the compiled ``go_load -scenario http`` (Go's net/http: keep-alive,
HTTP/2 by ALPN) and ``tlsecho bench --scenario http``, 16 connections, one
request at a time on each. Reported: requests per second and the server's
CPU time per request (from /proc), the median of the rounds, and the ratio
to tlsecho.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from compare import (  # benchmarks/compare.py, beside this file
    BIN,
    DASH,
    PEERS,
    TIMES,
    Server,
    build_go_load,
    cpu_seconds,
    run_load,
    slug,
    start,
    stop,
    versions,
    write_section,
)

BEGIN, END = "<!-- http_compare.py: begin -->", "<!-- http_compare.py: end -->"


@dataclass
class Load:
    label: str
    version: str  # "1.1" or "2"


LOADS = [Load("HTTP/1.1 keep-alive, 16 conns", "1.1"), Load("HTTP/2, 16 conns", "2")]


def http_servers() -> list[tuple[Server, set[str]]]:
    """Each server with the HTTP versions it speaks."""
    tlsecho = [
        *(str(BIN / "tlsecho"), "serve", "--mode", "http", "--host", "127.0.0.1"),
        *("--port", "{port}", "--cert", "{cert}", "--key", "{key}"),
        *("--log-level", "warning", "--loop", "uvloop"),
    ]
    uvicorn = [
        *(str(BIN / "uvicorn"), "asgi_health:app", "--app-dir", str(PEERS)),
        *("--host", "127.0.0.1", "--port", "{port}", "--http", "h11", "--loop", "uvloop"),
        *("--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--no-access-log"),
        *("--log-level", "warning", "--lifespan", "off"),
    ]
    hypercorn = [
        *(str(BIN / "hypercorn"), "asgi_health:app"),
        *("--bind", "127.0.0.1:{port}", "--certfile", "{cert}", "--keyfile", "{key}"),
        *("--worker-class", "uvloop", "--log-level", "warning"),
    ]
    return [
        (Server("tlsecho --mode http", tlsecho), {"1.1", "2"}),
        (Server("uvicorn + h11", uvicorn), {"1.1"}),
        (Server("hypercorn", hypercorn), {"1.1", "2"}),
    ]


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of every process under it (hypercorn serves
    from a child process)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0.0
    for p in tree:
        with contextlib.suppress(OSError):  # gone meanwhile
            total += cpu_seconds(p)
    return total


def http_load(
    port: int, ca: Path, load: Load, duration: float, client: list[str]
) -> dict[str, object]:
    alpn = ["--alpn", "h2"] if load.version == "2" else []
    cmd = [
        *("taskset", "-c", "1", *client, "--host", "localhost", "--port", str(port)),
        *("--cafile", str(ca), "--json", "--duration", str(duration), "--warmup", "1"),
        *("--scenario", "http", "--path", "/health", "-c", "16", *alpn),
    ]
    return run_load(cmd, duration)


def measure(
    srv: Server, load: Load, tmp: Path, duration: float, client: list[str]
) -> tuple[float, dict[str, object]]:
    d = tmp / "ecdsa"
    proc, port = start(srv, d / "server.crt", d / "server.key", tmp / f"{slug(srv.name)}.log")
    try:
        before = tree_cpu(proc.pid)
        r = http_load(port, d / "ca.crt", load, duration, client)
        cpu = tree_cpu(proc.pid) - before
    finally:
        stop(proc)
    ops = float(r.get("operations") or 0)  # type: ignore[arg-type]
    share = duration / (duration + 1)
    return (cpu * share / ops * 1e6 if ops and r.get("ok") else float("inf")), r


def cell(cpu_us: float, r: dict[str, object], base: float | None) -> str:
    if not r.get("ok"):
        errors = r.get("errors")
        return f"failed ({', '.join(str(k) for k in errors) if isinstance(errors, dict) else ''})"[
            :60
        ]
    rate = float(r["operations_per_second"])  # type: ignore[arg-type]
    ratio = f" ({cpu_us / base:.2f}{TIMES})" if base and base != float("inf") else ""
    return f"{rate:,.0f} req/s, {cpu_us:,.1f} µs/req{ratio}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per run (4)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per cell; the median (3)")
    ap.add_argument("--write", type=Path, help="replace the generated section of this file")
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = str(PEERS)  # hypercorn imports asgi_health from there
    tmp = Path(tempfile.mkdtemp(prefix="tlsecho-http-bench-"))
    subprocess.run(
        [BIN / "tlsecho", "cert", "--ca", "--out", tmp / "ecdsa"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    clients: list[tuple[str, list[str]]] = []
    go_load = build_go_load(tmp)
    if go_load is not None:
        clients.append(("go_load (Go net/http)", go_load))
    clients.append(("tlsecho bench", [str(BIN / "tlsecho"), "bench"]))
    srvs = http_servers()
    runs: dict[tuple[str, str, str], list[tuple[float, dict[str, object]]]] = {}
    for rnd in range(args.rounds):
        for cname, client in clients:
            for load in LOADS:
                for srv, speaks in srvs:
                    if load.version not in speaks:
                        continue
                    cpu_us, r = measure(srv, load, tmp, args.duration, client)
                    runs.setdefault((cname, load.label, srv.name), []).append((cpu_us, r))
                    print(
                        f"round {rnd + 1} {cname:<22} {load.label:<30} {srv.name:<20} "
                        f"{cell(cpu_us, r, None)}",
                        file=sys.stderr,
                    )
                    time.sleep(0.2)
    names = [s.name for s, _ in srvs]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Generated {when} by `python benchmarks/http_compare.py --duration {args.duration:g} "
        f"--rounds {args.rounds}` (`make bench`) on: {versions()}.",
        "",
        "Every server answers `GET /health` with the same 20-byte JSON over TLS 1.3; 16 "
        "keep-alive connections, one request at a time each; server pinned to core 0, "
        "load to core 1. Each cell: requests per second, the server's CPU time per "
        "request (user + system, /proc), from the run with the median CPU cost of "
        f"{args.rounds}; in brackets, that cost as a multiple of tlsecho's "
        f"(above 1.00{TIMES}: tlsecho is cheaper).",
        "",
        "| load | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for cname, _ in clients:
        for load in LOADS:
            cells = []
            base_runs = runs.get((cname, load.label, names[0]), [])
            base = (
                sorted(base_runs, key=lambda x: x[0])[len(base_runs) // 2][0] if base_runs else None
            )
            for name in names:
                got = runs.get((cname, load.label, name))
                if not got:
                    cells.append(DASH)
                    continue
                cpu_us, r = sorted(got, key=lambda x: x[0])[len(got) // 2]
                cells.append(cell(cpu_us, r, base))
            lines.append(f"| {load.label}, {cname} | " + " | ".join(cells) + " |")
    md = "\n".join(lines)
    print(md)
    if args.write:
        write_section(args.write, BEGIN, END, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
