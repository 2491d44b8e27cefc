"""``tlsecho badssl``: one echo listener per broken TLS property."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tlsecho.cli.common import (
    add_endpoint_range,
    add_logging,
    add_loop,
    level,
    subcommand,
)
from tlsecho.config import ServerConfig
from tlsecho.lab.badssl import endpoint_configs
from tlsecho.logs import configure
from tlsecho.pki.certs import default_cert_dir, write_pki
from tlsecho.server.core import EchoServer
from tlsecho.server.group import ServerGroup
from tlsecho.server.run import run_on_loop

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    b = subcommand(
        sub,
        "badssl",
        "one echo listener per broken TLS property, on consecutive ports",
        "Expired, not-yet-valid, wrong-host, self-signed and unknown-CA certificates,\n"
        "client certificates required, version-pinned and ALPN-required endpoints:\n"
        "the table printed says what a correct client must do with each.",
        ["tlsecho badssl --port 10443", "tlsecho badssl --port 0 --out /tmp/badssl"],
    )
    add_endpoint_range(b, 10443, "the PKI", "badssl")
    add_loop(b)
    add_logging(b)


def run(args: argparse.Namespace) -> int:
    configure(level(args), fmt=args.log_format)
    out = args.out or default_cert_dir() / "badssl"
    out.mkdir(parents=True, exist_ok=True)
    pki = write_pki(out, bad=True, force=True)
    base = ServerConfig(host=args.host, loop=args.loop)
    configs = endpoint_configs(pki, base, args.port)
    # Each connection's line says which endpoint it hit.
    servers = [EchoServer(cfg, name=ep.name) for ep, cfg in configs]
    # The table says where each endpoint listens; one server's start-up and
    # shutdown lines, nine times over, would only bury it.
    main_log = logging.getLogger("tlsecho.main")
    quiet = main_log.level < logging.WARNING and not args.verbose

    group = ServerGroup(servers)

    async def serve_all() -> None:
        if quiet:
            main_log.setLevel(logging.WARNING)
        await group.start()

        def show() -> None:
            width = max(len(ep.name) for ep, _ in configs)
            print(f"bad TLS endpoints on {args.host}; trust {pki.ca.cert}")
            print(f"  {'port':>5}  {'property':<{width}}  a correct client must")
            for (ep, _), srv in zip(configs, servers, strict=True):
                print(f"  {srv.port:>5}  {ep.name:<{width}}  {ep.expect}")
            print(f"client certificate: {pki.client.cert} (key {pki.client.key})", flush=True)

        await group.run_until_signalled(show)

    run_on_loop(args.loop, serve_all())
    return 0
