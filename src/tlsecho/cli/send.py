"""``tlsecho send``: the original example's client."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

from tlsecho.cli.common import (
    add_client_tls,
    add_endpoint,
    add_logging,
    add_loop,
    add_mode,
    client_config,
    default,
    level,
    peer_console,
    subcommand,
)
from tlsecho.client.echo import EchoClient
from tlsecho.config import DEFAULT_PARTS, ClientConfig
from tlsecho.logs import configure
from tlsecho.server.run import run_on_loop

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    d = subcommand(
        sub,
        "send",
        "send a message in parts and verify the echo",
        "The original example's client: each PART is one write, then the message ends\n"
        "(a NUL byte in mode nul). Every byte of the echo is checked as it arrives.\n"
        "'-' streams stdin and writes the echo to stdout: the way to send megabytes\n"
        "(the shell refuses an argument over 128 KiB before tlsecho runs).",
        [
            "tlsecho send --cafile pki/ca.crt 'hello, ' 'world'",
            "tlsecho send --host example.test --port 443 --mode raw - < file",
            "tlsecho send --mode hello --port 8443   # what did this client offer?",
        ],
    )
    d.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help="the message, in parts written one by one (default: the original three); "
        "'-' reads stdin and writes the echo to stdout (large messages: "
        "tlsecho send - < FILE). The server is --host/--port, never a part",
    )
    add_endpoint(d)
    add_mode(d)
    add_client_tls(d)
    d.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
    d.add_argument(
        "--proxy-header",
        choices=["v1", "v2"],
        help="send an HAProxy PROXY header before the handshake",
    )
    d.add_argument(
        "--timeout",
        type=float,
        default=default(ClientConfig, "timeout"),
        help="seconds for the whole exchange (default: %(default)g)",
        metavar="SECONDS",
    )
    d.add_argument(
        "--json",
        action="store_true",
        help="with --mode hello: print the server's answer as it came, JSON",
    )
    # A client: the stdlib loop by default (a uvloop client lost a record once, BENCHMARKS.md).
    add_loop(d, "asyncio")
    add_logging(d)


def _join(values: object, empty: str = "none") -> str:
    return ", ".join(map(str, values)) if isinstance(values, list) and values else empty


def print_answer(answer: dict[str, Any]) -> None:
    """A ``--mode hello`` answer as two tables: negotiated, then offered."""
    from rich.table import Table

    console = peer_console()
    got = answer.get("negotiated") or {}
    cert = got.get("client_certificate")
    table = Table(title=f"negotiated with {answer.get('peer', '?')}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in (
        ("TLS version", got.get("tls_version")),
        ("cipher", got.get("cipher")),
        ("ALPN", got.get("alpn") or "none"),
        ("SNI", got.get("sni") or "none"),
        ("resumed", "yes" if got.get("resumed") else "no"),
        ("client certificate", cert["subject"] if cert else "none"),
    ):
        table.add_row(k, str(v))
    console.print(table)
    hello = answer.get("client_hello")
    if not hello:
        console.print(f"no ClientHello: {answer.get('client_hello_error', 'not read')}")
        return
    offered = Table(title="what this client offered (ClientHello)", show_header=False)
    offered.add_column(style="bold")
    offered.add_column(overflow="fold")  # long lists and fingerprints fold, never cut
    exts = [e["name"] for e in hello.get("extensions", [])]
    for k, v in (
        ("versions", _join(hello.get("supported_versions"), hello.get("legacy_version", "?"))),
        ("cipher suites", _join(hello.get("cipher_suites"))),
        ("groups", _join(hello.get("supported_groups"))),
        ("key shares", _join(hello.get("key_share_groups"))),
        ("signature algorithms", _join(hello.get("signature_algorithms"))),
        ("ALPN", _join(hello.get("alpn"))),
        ("SNI", hello.get("server_name") or "none"),
        ("extensions (in order)", _join(exts)),
        ("JA3", f"{hello.get('ja3_hash')} ({hello.get('ja3')})"),
        ("JA4", hello.get("ja4")),
        ("JA4_r", hello.get("ja4_r")),
    ):
        offered.add_row(k, str(v))
    console.print(offered)


async def _stdin_chunks() -> AsyncIterator[bytes]:
    stdin = sys.stdin.buffer
    read1 = getattr(stdin, "read1", stdin.read)
    while True:
        chunk: bytes = await asyncio.to_thread(read1, 65536)
        if not chunk:
            return
        yield chunk


def run(args: argparse.Namespace) -> int:
    from_stdin = args.parts == ["-"]
    # With '-' the echo goes to stdout, so the transcript is off unless asked for.
    configure(level(args, "warning" if from_stdin else "info"), fmt=args.log_format)
    config = client_config(args)
    if config.insecure:
        print(
            "tlsecho send: warning: --insecure: the server's certificate is not verified",
            file=sys.stderr,
        )
    client = EchoClient(config)
    if config.mode == "hello":
        answer = run_on_loop(args.loop, client.hello())
        if args.json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
        else:
            print_answer(answer)
        return 0
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
