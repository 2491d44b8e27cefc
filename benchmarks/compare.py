#!/usr/bin/env python3
"""tlsecho against its peers, side by side, under the same load from
``tlsecho bench``: the benchmark suite behind ``make bench`` and BENCHMARKS.md.

    python benchmarks/compare.py [--duration 4] [--idle 10000] [--write BENCHMARKS.md]

The load: the compiled ``go_load`` (benchmarks/peers/go_load.go, Go's
crypto/tls: a client whose own system calls are cheap) when ``go`` is
installed, else ``tlsecho bench``; ``tlsecho bench`` is also run against
tlsecho (uvloop) next to go_load, in a table of its own.

Servers (each alone, pinned to core 0; the load generator pinned to core 1):
tlsecho serve on uvloop (on each engine: SSLSocket and memory BIOs) and on
the stdlib loop (and at the default log level,
with and without ``--fingerprint``), the original example's style
(asyncio streams, ``read(128)``), an ``asyncio.Protocol`` on the loop's TLS
transport (uvloop and stdlib), node's ``tls``, Go's ``crypto/tls`` when ``go``
is installed, and socat (``OPENSSL-LISTEN,fork`` + ``PIPE``: a raw echo, so
its rows run in raw mode, and a process per connection). Each scenario runs
against every server in turn, so a noisy moment hurts them alike.

Reported per row: the load generator's throughput and the server's CPU time
(user + system, children included, from /proc) per operation: the figure that
does not depend on the client's speed. The idle row opens N TLS connections,
each echoing one byte, and reports the server's RSS growth per connection.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PEERS = ROOT / "benchmarks" / "peers"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DASH, TIMES = "\u2013", "\u00d7"
BEGIN, END = "<!-- compare.py: begin -->", "<!-- compare.py: end -->"


@dataclass(frozen=True)
class Row:
    label: str
    args: tuple[str, ...]
    unit: str  # what one operation is, for "µs CPU per ..."
    cert: str = "ecdsa"
    stream: bool = False


ROWS = [
    Row("pingpong 64 B, 16 conns", ("--scenario", "pingpong", "-c", "16", "-s", "64"), "msg"),
    Row("pingpong 1 KiB, 16 conns", ("--scenario", "pingpong", "-c", "16", "-s", "1024"), "msg"),
    Row("pingpong 16 KiB, 16 conns", ("--scenario", "pingpong", "-c", "16", "-s", "16384"), "msg"),
    Row(
        "stream 64 KiB, 4 conns",
        ("--scenario", "stream", "-c", "4", "-s", "65536"),
        "MB",
        stream=True,
    ),
    Row("new connection per message, ECDSA P-256", ("--scenario", "connect", "-c", "8"), "conn"),
    Row(
        "new connection per message, RSA-2048",
        ("--scenario", "connect", "-c", "8"),
        "conn",
        cert="rsa",
    ),
    Row(
        "new connection per message, TLS 1.3 resumption",
        ("--scenario", "connect", "-c", "8", "--resume"),
        "conn",
    ),
]


@dataclass
class Server:
    name: str
    argv: list[str]  # {cert} {key} {port} are filled in
    mode: str = "nul"
    note: str = ""


def servers(tmp: Path) -> list[Server]:
    py = str(BIN / "python")
    tlsecho = [
        str(BIN / "tlsecho"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--cert",
        "{cert}",
        "--key",
        "{key}",
        "--log-level",
        "warning",
    ]
    info = [*tlsecho[:-1], "info"]
    out = [
        Server("tlsecho (uvloop)", [*tlsecho, "--loop", "uvloop"]),
        Server("tlsecho membio (uvloop)", [*tlsecho, "--loop", "uvloop", "--engine", "membio"]),
        Server("tlsecho (asyncio)", [*tlsecho, "--loop", "asyncio"]),
        # The default log level writes a line per connection; --fingerprint
        # adds a JA4 to it (the ClientHello parsed): its cost, side by side.
        Server("tlsecho log=info", [*info, "--loop", "uvloop"]),
        Server("tlsecho --fingerprint log=info", [*info, "--loop", "uvloop", "--fingerprint"]),
        Server(
            "original style",
            [py, str(PEERS / "original_style_server.py"), "{cert}", "{key}", "{port}"],
        ),
        Server(
            "Protocol + uvloop",
            [py, str(PEERS / "protocol_server.py"), "{cert}", "{key}", "{port}", "uvloop"],
        ),
        Server(
            "Protocol + asyncio",
            [py, str(PEERS / "protocol_server.py"), "{cert}", "{key}", "{port}", "asyncio"],
        ),
        Server(
            "node tls",
            [
                "node",
                str(ROOT / "tests" / "peers" / "node_echo_server.js"),
                "{cert}",
                "{key}",
                "echo",
                "{port}",
            ],
        ),
    ]
    if shutil.which("go"):
        exe = tmp / "go_echo_server"
        env = {**os.environ, "GOCACHE": str(tmp / "gocache")}
        subprocess.run(
            ["go", "build", "-o", str(exe), str(PEERS / "go_echo_server.go")], check=True, env=env
        )
        out.append(Server("Go crypto/tls", [str(exe), "{cert}", "{key}", "{port}"]))
    if shutil.which("socat"):
        out.append(
            Server(
                "socat",
                [
                    "socat",
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,cert={pem},verify=0",
                    "PIPE",
                ],
                mode="raw",
                note="raw mode (socat echoes the NUL); a process per connection",
            )
        )
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system time of the process and of its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def start(server: Server, cert: Path, key: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    pem = cert.with_suffix(".pem")
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    argv = [
        a.format(cert=cert, key=key, port=port, pem=pem) if "{" in a else a for a in server.argv
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=out, stderr=out)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{server.name} did not start: {log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench(
    port: int, ca: Path, server: Server, row: Row, duration: float, client: list[str] | None = None
) -> dict[str, object]:
    """One load run: ``tlsecho bench``, or the compiled ``go_load`` when
    ``client`` is its command (it takes the same options and prints the
    same JSON keys)."""
    load = client or [str(BIN / "tlsecho"), "bench"]
    cmd = [
        "taskset",
        "-c",
        "1",
        *load,
        "--host",
        "localhost",
        "--port",
        str(port),
        "--cafile",
        str(ca),
        "--json",
        "--duration",
        str(duration),
        "--warmup",
        "1",
        "--mode",
        server.mode,
        *row.args,
    ]
    return run_load(cmd, duration)


def run_load(cmd: list[str], duration: float) -> dict[str, object]:
    """Run a load command that prints bench's JSON; a run that printed none
    is a failed result with the end of what it said."""
    p = subprocess.run(cmd, capture_output=True, timeout=duration + 120, check=False)
    try:
        result: dict[str, object] = json.loads(p.stdout)
    except ValueError:
        return {"ok": False, "operations": 0, "errors": {"bench failed": p.stderr.decode()[-300:]}}
    return result


def idle_rss(pid: int, port: int, ca: Path, count: int) -> float:
    """Server RSS growth per idle TLS connection, in KiB."""
    ctx = ssl.create_default_context(cafile=str(ca))
    socks: list[ssl.SSLSocket] = []

    def one() -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        # Without it, Nagle holds the "x" behind the unacknowledged Finished
        # until a delayed ACK (40 ms) on servers that send no ticket at once.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        socks.append(s)
        s.sendall(b"x")  # the server has finished its side and read once
        if s.recv(1) != b"x":
            raise OSError("no echo")

    try:
        one()  # the first connection's one-off allocations are not per connection
        time.sleep(0.3)
        before = rss_bytes(pid)
        for _ in range(count):
            one()
        time.sleep(1.0)
        after = rss_bytes(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / count / 1024


def measure(
    srv: Server,
    row: Row,
    cert: Path,
    key: Path,
    ca: Path,
    tmp: Path,
    duration: float,
    client: list[str] | None = None,
) -> tuple[float, dict[str, object]]:
    """One run of one row against one server: (server CPU µs per op, bench result)."""
    proc, port = start(srv, cert, key, tmp / f"{slug(srv.name)}.log")
    try:
        before = cpu_seconds(proc.pid)
        r = bench(port, ca, srv, row, duration, client)
        time.sleep(0.5)  # socat's children exit and are reaped
        cpu = cpu_seconds(proc.pid) - before
    finally:
        stop(proc)
    # CPU over warm-up + measurement, per measured operation.
    share = duration / (duration + 1)
    ops = float(r.get("operations") or 0)  # type: ignore[arg-type]
    if row.stream:
        ops = float(r.get("bytes_verified") or 0) / 1e6  # type: ignore[arg-type]
    return (cpu * share / ops * 1e6 if ops else float("inf")), r


def fmt_row(row: Row, r: dict[str, object], cpu_us: float) -> str:
    if not r.get("ok"):
        errors = r.get("errors")
        names = ", ".join(str(k) for k in errors) if isinstance(errors, dict) else ""
        return f"failed ({names})"[:60]
    if row.stream:
        mbs = float(r["megabytes_per_second"])  # type: ignore[arg-type]
        return f"{mbs:,.0f} MB/s, {cpu_us:,.0f} µs/MB"
    ops = float(r["operations_per_second"])  # type: ignore[arg-type]
    lat = r.get("latency_us") or {}
    p99 = f"p99 {lat['p99']:,.0f} µs, " if isinstance(lat, dict) and "p99" in lat else ""
    return f"{ops:,.0f}/s, {p99}{cpu_us:,.1f} µs/{row.unit}"


def versions() -> str:
    def cmd(*argv: str) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (out.stdout or out.stderr).splitlines()[0].strip()
        except (OSError, IndexError):
            return "-"

    import uvloop

    from tlsecho.bench.runner import environment

    cpu = environment()["cpu"]
    uvloop_version = getattr(uvloop, "__version__", "?")
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}; "
        f"CPython {platform.python_version()}, {ssl.OPENSSL_VERSION}, uvloop {uvloop_version}; "
        f"node {cmd('node', '--version')}; {cmd('go', 'version')}; {cmd('socat', '-V')[:40]}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per run (4)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="runs per cell; the median is reported (3)"
    )
    ap.add_argument("--idle", type=int, default=10000, help="idle connections (10000; 0: skip)")
    ap.add_argument("--only", help="comma-separated server names to run (default: all)")
    ap.add_argument("--rows", help="comma-separated row numbers, from 1 (default: all)")
    ap.add_argument("--write", type=Path, help="replace the generated section of this file")
    ap.add_argument(
        "--client",
        choices=["go", "tlsecho"],
        default="go",
        help="the load for the server table: the compiled go_load (default, when go is "
        "installed) or tlsecho bench; either way tlsecho bench is also compared with "
        "go_load against tlsecho (uvloop)",
    )
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the idle row; inherited
    tmp = Path(tempfile.mkdtemp(prefix="tlsecho-bench-"))
    subprocess.run(
        [BIN / "tlsecho", "cert", "--ca", "--out", tmp / "ecdsa"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [BIN / "tlsecho", "cert", "--ca", "--key-type", "rsa", "--out", tmp / "rsa"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    srvs = servers(tmp)
    go_load = build_go_load(tmp)
    main_client = go_load if args.client == "go" else None
    if args.client == "go" and go_load is None:
        print("go is not installed: the server table uses tlsecho bench", file=sys.stderr)
    args.load_name = "go_load (compiled, Go crypto/tls)" if main_client else "tlsecho bench"
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        srvs = [s for s in srvs if s.name in wanted]
    rows = ROWS
    if args.rows:
        rows = [ROWS[int(i) - 1] for i in args.rows.split(",")]
    table: dict[str, dict[str, str]] = {}  # row -> server -> cell
    costs: dict[str, dict[str, float]] = {}  # row -> server -> CPU per op (KiB: idle row)
    runs: dict[str, dict[str, list[tuple[float, dict[str, object]]]]] = {}
    clients: dict[str, list[tuple[float, dict[str, object]]]] = {}
    for rnd in range(args.rounds):
        for row in rows:
            d = tmp / row.cert
            cert, key, ca = d / "server.crt", d / "server.key", d / "ca.crt"
            for srv in srvs:
                cpu_us, r = measure(srv, row, cert, key, ca, tmp, args.duration, main_client)
                runs.setdefault(row.label, {}).setdefault(srv.name, []).append((cpu_us, r))
                print(
                    f"round {rnd + 1} {row.label:<48} {srv.name:<20} {fmt_row(row, r, cpu_us)}",
                    file=sys.stderr,
                )
            if go_load is not None and srvs and srvs[0].name == "tlsecho (uvloop)":
                # The two load generators side by side, against the same server.
                other = None if main_client else go_load
                cpu_us, r = measure(srvs[0], row, cert, key, ca, tmp, args.duration, other)
                clients.setdefault(row.label, []).append((cpu_us, r))
                print(f"round {rnd + 1} {row.label:<48} {'other client':<20} "
                      f"{fmt_row(row, r, cpu_us)}", file=sys.stderr)  # fmt: skip
    for row in rows:
        for srv in srvs:
            # The run with the median CPU cost: one noisy moment does not
            # decide a cell. Any failed run marks the cell.
            ordered = sorted(runs[row.label][srv.name], key=lambda run: run[0])
            cpu_us, r = ordered[len(ordered) // 2]
            failed = [run for _, run in ordered if not run.get("ok")]
            if failed:
                cpu_us, r = float("inf"), failed[0]
            table.setdefault(row.label, {})[srv.name] = fmt_row(row, r, cpu_us)
            costs.setdefault(row.label, {})[srv.name] = cpu_us
    if args.idle:
        measure_idle(srvs, tmp, args.idle, table, costs)
    md = render(table, costs, srvs, args)
    if clients:
        md += "\n\n" + render_clients(rows, runs, clients, args)
    print(md)
    if args.write:
        write_section(args.write, BEGIN, END, md)
    return 0


def write_section(path: Path, begin: str, end: str, md: str) -> None:
    """Replace what stands between the markers ``begin`` and ``end`` in ``path``."""
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no '{begin}' ... '{end}' section")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{md}\n{end}{tail}")


def measure_idle(
    srvs: list[Server],
    tmp: Path,
    count: int,
    table: dict[str, dict[str, str]],
    costs: dict[str, dict[str, float]],
) -> None:
    """The idle row: each server's RSS growth per open TLS connection."""
    idle_label = f"server RSS per idle TLS connection ({count:,} open)"
    d = tmp / "ecdsa"
    for srv in srvs:
        if srv.name == "socat":
            table.setdefault(idle_label, {})[srv.name] = f"{DASH} (a process per connection)"
            continue
        log = tmp / f"{slug(srv.name)}-idle.log"
        proc, port = start(srv, d / "server.crt", d / "server.key", log)
        try:
            kib = idle_rss(proc.pid, port, d / "ca.crt", count)
            cell = f"{kib:,.1f} KiB"
            costs.setdefault(idle_label, {})[srv.name] = kib
        except OSError as exc:
            cell = f"failed ({exc})"[:60]
        finally:
            stop(proc)
        table.setdefault(idle_label, {})[srv.name] = cell
        print(f"{idle_label:<48} {srv.name:<20} {cell}", file=sys.stderr)


def build_go_load(tmp: Path) -> list[str] | None:
    """The compiled load generator (benchmarks/peers/go_load.go), or None
    without go."""
    if not shutil.which("go"):
        return None
    exe = tmp / "go_load"
    env = {**os.environ, "GOCACHE": str(tmp / "gocache")}
    subprocess.run(["go", "build", "-o", str(exe), str(PEERS / "go_load.go")], check=True, env=env)
    return [str(exe)]


def _median(runs: list[tuple[float, dict[str, object]]]) -> tuple[float, dict[str, object]]:
    ordered = sorted(runs, key=lambda run: run[0])
    return ordered[len(ordered) // 2]


def render_clients(
    rows: list[Row],
    runs: dict[str, dict[str, list[tuple[float, dict[str, object]]]]],
    clients: dict[str, list[tuple[float, dict[str, object]]]],
    args: argparse.Namespace,
) -> str:
    """tlsecho bench against go_load, both loading tlsecho (uvloop)."""
    go_first = args.load_name.startswith("go_load")
    lines = [
        "### The two load generators against tlsecho (uvloop)",
        "",
        "The same rows, one server, two clients (medians of the same rounds): the "
        "compiled go_load and our own `tlsecho bench`. Throughput is each client's; the "
        "server's CPU per operation shows what a client's own system-call pattern "
        "changes on the server's side.",
        "",
        "| scenario | go_load | tlsecho bench | tlsecho bench ÷ go_load (throughput) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if row.label not in clients or "tlsecho (uvloop)" not in runs.get(row.label, {}):
            continue
        main = _median(runs[row.label]["tlsecho (uvloop)"])
        other = _median(clients[row.label])
        go, ours = (main, other) if go_first else (other, main)
        key = "megabytes_per_second" if row.stream else "operations_per_second"
        go_rate = float(go[1].get(key) or 0)  # type: ignore[arg-type]
        our_rate = float(ours[1].get(key) or 0)  # type: ignore[arg-type]
        ratio = f"{our_rate / go_rate:.2f}{TIMES}" if go_rate else DASH
        lines.append(
            f"| {row.label} | {fmt_row(row, go[1], go[0])} | {fmt_row(row, ours[1], ours[0])} "
            f"| {ratio} |"
        )
    return "\n".join(lines)


def render(
    table: dict[str, dict[str, str]],
    costs: dict[str, dict[str, float]],
    srvs: list[Server],
    args: argparse.Namespace,
) -> str:
    names = [s.name for s in srvs]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Generated {when} by `python benchmarks/compare.py --duration {args.duration:g} "
        f"--rounds {args.rounds} --idle {args.idle}` (`make bench`) on: {versions()}.",
        "",
        f"Load: {args.load_name}. "
        "Each cell: the load generator's throughput (and its p99 latency, closed loop), "
        "then the server's CPU time per "
        "operation (user + system, from /proc), from the run with the median CPU cost "
        f"of {args.rounds} (rounds interleaved: every server once, then again); in "
        "brackets, that CPU cost as a multiple "
        f"of the row's cheapest server (1.00{TIMES} = the cheapest).",
        "",
        "| scenario | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, cells in table.items():
        out = []
        row_costs = costs.get(label, {})  # a failed run's cost is inf
        low = min(row_costs.values(), default=0.0)
        for n in names:
            cell = cells.get(n, DASH)
            cost = row_costs.get(n)
            if cost is not None and low and cost != float("inf"):
                cell += f" ({cost / low:.2f}{TIMES})"
            out.append(cell)
        lines.append(f"| {label} | " + " | ".join(out) + " |")
    notes = [f"{s.name}: {s.note}" for s in srvs if s.note]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
