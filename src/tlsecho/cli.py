"""``tlsecho``: parse arguments, build config objects, call the library.

Only this module prints and chooses exit codes: 0 success, 1 a reported
error (one line on stderr), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from tlsecho import __version__
from tlsecho.badssl import endpoint_configs
from tlsecho.certs import DEFAULT_HOSTS, default_cert_dir, write_pair, write_pki
from tlsecho.client import EchoClient
from tlsecho.config import (
    DEFAULT_PARTS,
    ClientAuth,
    ClientConfig,
    ServerConfig,
    parse_listen,
    parse_sni,
)
from tlsecho.errors import ConfigError, TlsEchoError
from tlsecho.framing import DEFAULT_MAX_LINE, MODES
from tlsecho.logs import TagFormatter, configure
from tlsecho.net import format_address, raise_fd_limit
from tlsecho.probe import ProbeResult, probe
from tlsecho.run import run_on_loop, run_until_signalled
from tlsecho.server import EchoServer

__all__ = ["main"]


def _add_logging(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging: the original transcript lines"
    )
    g.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    g.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text (the original's 'name: message'; default) or one JSON object per line",
    )


def _level(args: argparse.Namespace, default: str = "info") -> str:
    if args.verbose:
        return "DEBUG"
    if args.quiet:
        return "WARNING"
    return str(args.log_level or default).upper()


def _add_endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost", help="host name or address (default: localhost)")
    p.add_argument("--port", type=int, default=10000, help="TCP port (default: 10000)")


def _add_loop(p: argparse.ArgumentParser, default: str = "auto") -> None:
    what = "auto = uvloop when installed" if default == "auto" else default
    p.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default=default,
        help=f"event loop (default: {what})",
    )


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', not {text!r}") from None


def _seconds_or_off(text: str) -> float | None:
    value = float(text)
    return None if value == 0 else value


def _add_mode(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        choices=list(MODES),
        default="nul",
        help="framing: nul (the original: a message ended by a NUL byte; default), "
        "line (each line echoed whole) or raw (every byte, until the peer closes)",
    )


def _add_versions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-version", choices=["1.2", "1.3"], help="lowest TLS version")
    p.add_argument("--max-version", choices=["1.2", "1.3"], help="highest TLS version")
    p.add_argument("--alpn", type=_csv, default=(), metavar="P1,P2", help="ALPN protocols to offer")
    p.add_argument(
        "--keylog",
        type=Path,
        help="append TLS secrets in NSS key log format for Wireshark (default: $SSLKEYLOGFILE)",
    )


def _add_client_tls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cafile",
        type=Path,
        help="trusted PEM certificates "
        "(default: the system store and the server's default certificate)",
    )
    p.add_argument(
        "--servername", help="name for SNI and the certificate check (default: the host)"
    )
    p.add_argument("--cert", type=Path, help="client certificate to present (mTLS)")
    p.add_argument("--key", type=Path, help="private key for --cert")
    _add_versions(p)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlsecho",
        description="TLS echo server, client and certificate tool.",
    )
    parser.add_argument("--version", action="version", version=f"tlsecho {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "cert", help="make a key and a self-signed certificate, or a small PKI (--ca)"
    )
    c.add_argument(
        "--key-type", choices=["ecdsa", "rsa"], default="ecdsa", help="default: ecdsa (P-256)"
    )
    c.add_argument("--rsa-bits", type=int, default=2048, help="RSA key size (default: 2048)")
    c.add_argument("--days", type=int, default=365, help="validity in days (default: 365)")
    c.add_argument(
        "--hosts",
        type=_csv,
        default=DEFAULT_HOSTS,
        help="comma-separated subjectAltName entries (default: localhost,127.0.0.1,::1)",
    )
    c.add_argument(
        "--out", type=Path, default=Path("."), help="directory to write the files to (default: .)"
    )
    c.add_argument("--force", action="store_true", help="overwrite existing files")
    c.add_argument(
        "--ca",
        action="store_true",
        help="make a CA and, signed by it, a server and a client certificate",
    )
    c.add_argument(
        "--client-name", default="tlsecho client", help="client certificate's common name (--ca)"
    )
    c.add_argument(
        "--bad",
        action="store_true",
        help="with --ca: also expired, not-yet-valid, wrong-host, self-signed and "
        "unknown-CA certificates",
    )

    s = sub.add_parser("serve", help="run the TLS echo server")
    _add_endpoint(s)
    s.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="listen here (repeatable; IPv6 as [ADDRESS]:PORT); replaces --host/--port",
    )
    _add_mode(s)
    s.add_argument(
        "--max-line",
        type=int,
        default=DEFAULT_MAX_LINE,
        help="longest line in --mode line, newline included (default: 65536)",
    )
    s.add_argument(
        "--cert",
        type=Path,
        help="PEM certificate (default: a per-user certificate made on first use)",
    )
    s.add_argument("--key", type=Path, help="PEM private key for --cert")
    s.add_argument(
        "--key-password",
        default=os.environ.get("TLSECHO_KEY_PASSWORD"),
        help="password of an encrypted key (or set TLSECHO_KEY_PASSWORD)",
    )
    s.add_argument(
        "--tls-profile",
        choices=["intermediate", "modern"],
        default="intermediate",
        help="Mozilla server-side TLS: intermediate (1.2 and 1.3; default) or modern (1.3)",
    )
    _add_versions(s)
    s.add_argument("--ciphers", help="OpenSSL cipher string for TLS 1.2 (default: the profile's)")
    s.add_argument(
        "--alpn-required",
        action="store_true",
        help="refuse a client with no ALPN protocol in common",
    )
    s.add_argument(
        "--session-tickets",
        type=int,
        help="TLS 1.3 session tickets per handshake (default: OpenSSL's 2; 0 disables)",
    )
    s.add_argument("--client-ca", type=Path, help="CA certificates for client certificates (mTLS)")
    s.add_argument(
        "--client-auth",
        choices=["none", "optional", "required"],
        help="client certificates (default: required with --client-ca, else none)",
    )
    s.add_argument(
        "--sni",
        action="append",
        default=[],
        metavar="NAME=CERT:KEY",
        help="serve CERT to clients asking for NAME (repeatable; wildcards like *.example.test)",
    )
    s.add_argument(
        "--proxy-protocol",
        choices=["off", "v1", "v2", "any"],
        default="off",
        help="read an HAProxy PROXY header before the handshake (default: off)",
    )
    s.add_argument(
        "--reload-interval",
        type=float,
        metavar="SECONDS",
        help="poll the certificate files and reload when they change (SIGHUP always reloads)",
    )
    s.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        help="seconds for the PROXY header and the handshake (default: 10)",
    )
    s.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds for flushing and the TLS close (default: 10)",
    )
    s.add_argument(
        "--idle-timeout",
        type=_seconds_or_off,
        default=300.0,
        metavar="SECONDS",
        help="close a session with no bytes either way for this long (default: 300; 0: never)",
    )
    s.add_argument(
        "--max-session",
        type=_seconds_or_off,
        default=None,
        metavar="SECONDS",
        help="close a session this long after its handshake (default: never)",
    )
    s.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="stop accepting while N connections are open "
        "(default: the file-descriptor limit less 64)",
    )
    s.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="N server processes on the same port (SO_REUSEPORT; default: 1; auto: one per CPU)",
    )
    s.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    s.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, time open sessions get to finish (default: 10); "
        "a second signal stops at once",
    )
    _add_loop(s)
    _add_logging(s)

    d = sub.add_parser("send", help="send a message in parts and verify the echo")
    d.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help="message parts, written one by one (default: the original three); "
        "'-' reads stdin and writes the echo to stdout",
    )
    _add_endpoint(d)
    _add_mode(d)
    _add_client_tls(d)
    d.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    d.add_argument(
        "--proxy-header",
        choices=["v1", "v2"],
        help="send an HAProxy PROXY header before the handshake",
    )
    d.add_argument(
        "--timeout", type=float, default=10.0, help="seconds for the whole exchange (default: 10)"
    )
    # A client: the stdlib loop by default (a uvloop client lost a record once, BENCHMARKS.md).
    _add_loop(d, default="asyncio")
    _add_logging(d)

    b = sub.add_parser(
        "badssl", help="one echo listener per broken TLS property, on consecutive ports"
    )
    b.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    b.add_argument(
        "--port", type=int, default=10443, help="first port (default: 10443; 0: free ports)"
    )
    b.add_argument(
        "--out",
        type=Path,
        help="directory for the PKI (default: a 'badssl' folder in the per-user data directory)",
    )
    _add_loop(b)
    _add_logging(b)

    be = sub.add_parser("bench", help="load generator: latency percentiles, throughput, conn/s")
    _add_endpoint(be)
    be.add_argument(
        "--scenario",
        choices=["pingpong", "stream", "connect"],
        default="pingpong",
        help="pingpong: one message at a time per connection (latency); stream: continuous "
        "data (throughput); connect: a new connection per message (default: pingpong)",
    )
    be.add_argument("-c", "--connections", "--conns", type=int, default=16, help="concurrent (16)")
    be.add_argument("-s", "--size", type=int, default=64, help="message or chunk bytes (64)")
    be.add_argument(
        "-d", "--duration", type=float, help="measured seconds (5; with --count: a cap, 1 h)"
    )
    be.add_argument(
        "-n", "--count", type=int, help="messages (connections) in all instead of --duration"
    )
    be.add_argument(
        "--rate",
        type=float,
        help="open loop: messages (connections) per second in all, timed from when each "
        "was due (default: closed loop)",
    )
    be.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (1)")
    be.add_argument("-p", "--processes", type=int, default=1, help="client processes (1)")
    be.add_argument("--resume", action="store_true", help="connect: resume TLS sessions")
    be.add_argument(
        "--timeout", type=float, default=10.0, help="seconds without progress: an error (10)"
    )
    _add_mode(be)
    _add_client_tls(be)
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

    pr = sub.add_parser("probe", help="connect and report what was negotiated")
    pr.add_argument(
        "target", metavar="HOST[:PORT]", help="server to probe (port 10000 unless given)"
    )
    _add_client_tls(pr)
    pr.add_argument("--insecure", action="store_true", help="exit 0 even when verification fails")
    pr.add_argument(
        "--no-resume", action="store_true", help="do not reconnect to test session resumption"
    )
    pr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pr.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")

    m = sub.add_parser(
        "demo", help="run a server and the client against it, print both transcripts"
    )
    _add_loop(m)
    return parser


def _cmd_cert(args: argparse.Namespace) -> int:
    common: dict[str, Any] = {
        "hosts": list(args.hosts),
        "key_type": args.key_type,
        "rsa_bits": args.rsa_bits,
    }
    if args.bad and not args.ca:
        raise ConfigError("--bad goes with --ca (the bad certificates are relative to the CA)")
    if not args.ca:
        pair = write_pair(args.out, days=args.days, force=args.force, **common)
        print(f"wrote certificate {pair.cert}")
        print(f"wrote key {pair.key} (mode 0600)")
        print(f"serve with: tlsecho serve --cert {pair.cert} --key {pair.key}")
        print(f"send with:  tlsecho send --cafile {pair.cert}")
        return 0
    pki = write_pki(
        args.out,
        days=args.days,
        force=args.force,
        bad=args.bad,
        client_name=args.client_name,
        **common,
    )
    rows = pki.index()
    width = max(len(name) for name, _, _ in rows)
    print(f"wrote to {args.out} (each .crt with its .key, keys mode 0600):")
    for name, what, do in rows:
        must = f"; a correct peer must {do}" if do.startswith("reject") else ""
        print(f"  {name:<{width}}  {what}{must}")
    print(
        f"serve with: tlsecho serve --cert {pki.server.cert} --key {pki.server.key}"
        f" --client-ca {pki.ca.cert}"
    )
    print(
        f"send with:  tlsecho send --cafile {pki.ca.cert}"
        f" --cert {pki.client.cert} --key {pki.client.key}"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    configure(_level(args), fmt=args.log_format)
    client_auth: ClientAuth = args.client_auth or ("required" if args.client_ca else "none")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        listen=tuple(parse_listen(x) for x in args.listen),
        mode=args.mode,
        max_line=args.max_line,
        cert=args.cert,
        key=args.key,
        key_password=args.key_password,
        profile=args.tls_profile,
        min_version=args.min_version,
        max_version=args.max_version,
        ciphers=args.ciphers,
        alpn=args.alpn,
        alpn_required=args.alpn_required,
        keylog=args.keylog,
        session_tickets=args.session_tickets,
        client_ca=args.client_ca,
        client_auth=client_auth,
        sni=tuple(parse_sni(x) for x in args.sni),
        proxy_protocol=args.proxy_protocol,
        reload_interval=args.reload_interval,
        handshake_timeout=args.handshake_timeout,
        shutdown_timeout=args.shutdown_timeout,
        idle_timeout=args.idle_timeout,
        max_session=args.max_session,
        max_connections=args.max_connections,
        drain_timeout=args.drain_timeout,
        metrics=parse_listen(args.metrics, what="--metrics") if args.metrics else None,
        loop=args.loop,
    )
    # Each connection is a descriptor: allow as many as the hard limit does.
    raise_fd_limit()
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.workers > 1:
        from tlsecho.workers import run_workers

        status = run_workers(config, args.workers, args.log_format)
        logging.getLogger("tlsecho.main").info("closing event loop")
        return status
    run_on_loop(config.loop, run_until_signalled(config))
    logging.getLogger("tlsecho.main").info("closing event loop")
    return 0


async def _stdin_chunks() -> AsyncIterator[bytes]:
    stdin = sys.stdin.buffer
    read1 = getattr(stdin, "read1", stdin.read)
    while True:
        chunk: bytes = await asyncio.to_thread(read1, 65536)
        if not chunk:
            return
        yield chunk


def _client_config(
    args: argparse.Namespace, host: str, port: int, *, echo: bool = True
) -> ClientConfig:
    """The ClientConfig of send, bench and probe: what _add_client_tls()
    declared; with ``echo``, also the framing, --insecure and --proxy-header
    (probe has its own --insecure: verify, but exit 0)."""
    extra = (
        {"mode": args.mode, "insecure": args.insecure, "proxy_header": args.proxy_header}
        if echo
        else {}
    )
    return ClientConfig(
        host=host,
        port=port,
        cafile=args.cafile,
        server_hostname=args.servername,
        cert=args.cert,
        key=args.key,
        min_version=args.min_version,
        max_version=args.max_version,
        alpn=args.alpn,
        keylog=args.keylog,
        timeout=args.timeout,
        **extra,
    )


def _cmd_send(args: argparse.Namespace) -> int:
    from_stdin = args.parts == ["-"]
    # With '-' the echo goes to stdout, so the transcript is off unless asked for.
    configure(_level(args, "warning" if from_stdin else "info"), fmt=args.log_format)
    config = _client_config(args, args.host, args.port)
    if config.insecure:
        print(
            "tlsecho send: warning: --insecure: the server's certificate is not verified",
            file=sys.stderr,
        )
    client = EchoClient(config)
    if from_stdin:
        out = sys.stdout.buffer

        def write_out(data: bytes) -> None:
            out.write(data)
            out.flush()

        run_on_loop(args.loop, client.send(_stdin_chunks(), on_echo=write_out))
    else:
        parts = [p.encode("utf-8", "surrogateescape") for p in args.parts] or list(DEFAULT_PARTS)
        run_on_loop(args.loop, client.send(parts))
        logging.getLogger("tlsecho.main").info("closing event loop")
    return 0


async def _demo() -> None:
    main_log = logging.getLogger("tlsecho.main")
    with tempfile.TemporaryDirectory(prefix="tlsecho-demo-") as tmp:
        pair = write_pair(Path(tmp))
        server = EchoServer(ServerConfig(host="localhost", port=0, cert=pair.cert, key=pair.key))
        await server.start()
        try:
            client = EchoClient(ClientConfig(host="localhost", port=server.port, cafile=pair.cert))
            await client.send()
            await server.wait_idle()
        finally:
            main_log.info("closing server")
            await server.aclose()


class _DemoFilter(logging.Filter):
    """Split the demo's log records into the server's and the client's."""

    def __init__(self, client: bool) -> None:
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.startswith("tlsecho.")
        return ours and (record.name == "tlsecho.client") == self.client


def _cmd_demo(args: argparse.Namespace) -> int:
    buf_server, buf_client = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    for buf, want_client in ((buf_server, False), (buf_client, True)):
        h = logging.StreamHandler(buf)
        h.setFormatter(TagFormatter())
        h.addFilter(_DemoFilter(want_client))
        root.addHandler(h)
    run_on_loop(args.loop, _demo())
    logging.getLogger("tlsecho.main").info("closing event loop")
    print("$ tlsecho serve -v --port 0   # server transcript")
    print(buf_server.getvalue(), end="")
    print()
    print("$ tlsecho send --port PORT    # client transcript")
    print(buf_client.getvalue(), end="")
    return 0


def _cmd_badssl(args: argparse.Namespace) -> int:
    configure(_level(args), fmt=args.log_format)
    out = args.out or default_cert_dir() / "badssl"
    out.mkdir(parents=True, exist_ok=True)
    pki = write_pki(out, bad=True, force=True)
    base = ServerConfig(host=args.host, loop=args.loop)
    configs = endpoint_configs(pki, base, args.port)
    servers = [EchoServer(cfg) for _, cfg in configs]

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            for srv in servers:
                await srv.start()
            width = max(len(ep.name) for ep, _ in configs)
            print(f"bad TLS endpoints on {args.host}; trust {pki.ca.cert}")
            print(f"  {'port':>5}  {'property':<{width}}  a correct client must")
            for (ep, _), srv in zip(configs, servers, strict=True):
                print(f"  {srv.port:>5}  {ep.name:<{width}}  {ep.expect}")
            print(f"client certificate: {pki.client.cert} (key {pki.client.key})", flush=True)
            await stop.wait()
        finally:
            for srv in servers:
                await srv.aclose()

    run_on_loop(args.loop, run())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from tlsecho.bench import BenchConfig, run_bench
    from tlsecho.bench.report import Progress, compare, plot, render

    if args.compare:
        compare(args.compare[0], args.compare[1], sys.stdout)
        return 0
    config = BenchConfig(
        client=_client_config(args, args.host, args.port),
        scenario=args.scenario,
        connections=args.connections,
        size=args.size,
        duration=args.duration or (3600.0 if args.count else 5.0),
        count=args.count,
        rate=args.rate,
        warmup=args.warmup,
        processes=args.processes,
        resume=args.resume,
        timeout=args.timeout,
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
    if not out["ok"]:
        print("tlsecho bench: error: the run had errors or wrong bytes", file=sys.stderr)
        return 1
    return 0


_PLOT_PERCENTILES = (0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99)


def _cmd_probe(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.target, default_port=10000, what="probe")
    config = _client_config(args, host, port, echo=False)
    result = probe(config, resume=not args.no_resume)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_probe(result)
    if result.verify_error and not args.insecure:
        print(f"tlsecho probe: error: {result.verify_error}", file=sys.stderr)
        return 1
    return 0


def _print_probe(r: ProbeResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    summary = Table(title=f"TLS probe of {format_address((r.host, r.port))}", show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    verify = "ok" if r.verified else f"FAILED: {r.verify_error}"
    rows = [
        ("TLS version", r.tls_version),
        ("cipher", f"{r.cipher} ({r.cipher_bits} bits)"),
        ("key exchange group", r.group or "n/a (this Python cannot tell)"),
        ("ALPN", r.alpn or "none"),
        ("SNI sent", r.server_name or "none"),
        ("resumption", {None: "not tried", True: "yes", False: "no"}[r.resumed]),
        ("verification", verify),
        ("TCP connect", f"{r.connect_ms:.1f} ms"),
        ("TLS handshake", f"{r.handshake_ms:.1f} ms"),
    ]
    for k, v in rows:
        summary.add_row(k, v)
    console.print(summary)
    for i, c in enumerate(r.chain):
        what = "server certificate" if i == 0 else f"chain certificate {i}"
        cert = Table(title=what, show_header=False)
        cert.add_column(style="bold")
        cert.add_column()
        for k, v in (
            ("subject", c.subject),
            ("issuer", c.issuer),
            ("SANs", ", ".join(c.sans) or "none"),
            ("valid", f"{c.not_before[:10]} to {c.not_after[:10]} ({c.days_left} days left)"),
            ("key", c.key),
            ("signature", c.signature_algorithm),
            ("SHA-256", c.sha256),
        ):
            cert.add_row(k, v)
        console.print(cert)


_COMMANDS = {
    "cert": _cmd_cert,
    "serve": _cmd_serve,
    "send": _cmd_send,
    "demo": _cmd_demo,
    "probe": _cmd_probe,
    "badssl": _cmd_badssl,
    "bench": _cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tlsecho`` command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except TlsEchoError as exc:
        print(f"tlsecho {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
