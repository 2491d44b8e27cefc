"""``tlsecho bench``: the load generator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tlsecho.cli.common import (
    add_client_tls,
    add_endpoint,
    add_mode,
    client_config,
    config_from_args,
    default,
    subcommand,
)
from tlsecho.config import parse_listen
from tlsecho.errors import ConfigError

__all__ = ["add_parser", "run"]

_PLOT_PERCENTILES = (0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99)


def add_parser(sub: Any) -> None:
    # The bench package (and its multiprocessing) loads only when it runs.
    from tlsecho.bench import BenchConfig

    def d(name: str) -> Any:
        return default(BenchConfig, name)

    be = subcommand(
        sub,
        "bench",
        "load generator: latency percentiles, throughput, conn/s",
        "Every byte echoed is verified; latency comes from histograms (with --rate,\n"
        "from when each message was due). Ctrl-C stops the load and keeps what was\n"
        "measured.",
        [
            "tlsecho bench localhost:10000 --cafile pki/ca.crt -c 16 -d 10",
            "tlsecho bench --scenario connect --resume -c 8 --json run.json",
            "tlsecho bench --rate 20000 -c 16 -d 10",
        ],
    )
    be.add_argument(
        "target",
        nargs="?",
        metavar="HOST[:PORT]",
        help="the server, as probe takes it (or --host/--port)",
    )
    add_endpoint(be)
    be.add_argument(
        "--scenario",
        choices=["pingpong", "stream", "connect", "http"],
        default=d("scenario"),
        help="pingpong: one message at a time per connection (latency); stream: continuous "
        "data (throughput); connect: a new connection per message; http: keep-alive "
        "HTTPS requests to serve --mode http, HTTP/2 with --alpn h2 (default: %(default)s)",
    )
    be.add_argument(
        "--path",
        metavar="PATH",
        help="http: the path requested (default: /bytes/SIZE?seed=1, whose every byte is "
        "checked; another path's first answer is the reference for the others)",
    )
    be.add_argument(
        "-c",
        "--connections",
        "--conns",
        type=int,
        default=d("connections"),
        help="concurrent (%(default)s)",
        metavar="N",
    )
    be.add_argument(
        "-s",
        "--size",
        type=int,
        default=d("size"),
        help="message or chunk bytes (%(default)s)",
        metavar="BYTES",
    )
    be.add_argument(
        "-d",
        "--duration",
        type=float,
        help="measured seconds (5; with --count: a cap, 1 h)",
        metavar="SECONDS",
    )
    be.add_argument(
        "-n",
        "--count",
        type=int,
        help="messages (connections) in all instead of --duration",
        metavar="N",
    )
    be.add_argument(
        "--rate",
        type=float,
        help="open loop: messages (connections) per second in all, timed from when each "
        "was due (default: closed loop)",
        metavar="PER_SECOND",
    )
    be.add_argument(
        "--warmup",
        type=float,
        default=d("warmup"),
        help="seconds before measuring (%(default)g)",
        metavar="SECONDS",
    )
    be.add_argument(
        "-p",
        "--processes",
        type=int,
        default=d("processes"),
        help="client processes (%(default)s)",
        metavar="N",
    )
    be.add_argument("--resume", action="store_true", help="connect: resume TLS sessions")
    be.add_argument(
        "--resume-ratio",
        type=float,
        metavar="R",
        help="connect: the share of handshakes (0 to 1) that resume the previous session; "
        "the table and JSON split TCP connect, TLS handshake and first-byte times by "
        "TLS version and full/resumed",
    )
    be.add_argument(
        "--timeout",
        type=float,
        default=d("timeout"),
        help="seconds without progress: an error (%(default)g)",
        metavar="SECONDS",
    )
    add_mode(be, hello=False)
    add_client_tls(be)
    be.add_argument("--insecure", action="store_true", help="do not verify the server")
    be.add_argument(
        "--proxy-header", choices=["v1", "v2"], help="send a PROXY header on each connection"
    )
    be.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the result as JSON to FILE (no FILE: to stdout, instead of the table)",
    )
    be.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="latency percentiles and throughput plot"
    )
    be.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="print B's figures as ratios to A's (two earlier --json results), run nothing",
    )


def run(args: argparse.Namespace) -> int:
    from tlsecho.bench import BenchConfig, run_bench
    from tlsecho.bench.report import Progress, compare, plot, render

    if args.compare:
        compare(args.compare[0], args.compare[1], sys.stdout)
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before a run that needs it)
        except ImportError:
            raise ConfigError("--plot needs matplotlib: pip install 'tlsecho[plot]'") from None
    target = {}
    if args.target:
        host, port = parse_listen(args.target, default_port=args.port, what="bench")
        target = {"host": host, "port": port}
    config = config_from_args(
        BenchConfig,
        args,
        client=client_config(args, **target),
        duration=(
            args.duration
            if args.duration is not None
            else 3600.0
            if args.count
            else default(BenchConfig, "duration")
        ),
    )
    if config.client.insecure:
        print("tlsecho bench: warning: --insecure: the server is not verified", file=sys.stderr)
    to_stdout = args.json == "-"
    if sys.stderr.isatty():
        with Progress(sys.stderr, 0 if config.count else config.warmup) as live:
            result = run_bench(config, live.update)
    else:
        result = run_bench(config)
    out = result.as_dict()
    if args.json and not to_stdout:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if to_stdout:
        print(json.dumps(out, indent=2))
    else:
        render(out, sys.stdout)
    if args.plot:
        points = [(p, result.latency.percentile(p) / 1000) for p in _PLOT_PERCENTILES]
        plot(out, points if result.latency.total else [], args.plot)
    if result.interrupted:
        print("tlsecho bench: interrupted", file=sys.stderr)
        return 130
    if not out["ok"]:
        what = (
            "the run had errors or wrong bytes"
            if out["errors"] or out["mismatched_bytes"]
            else "no operation completed in the measured time"
        )
        print(f"tlsecho bench: error: {what}", file=sys.stderr)
        return 1
    return 0
