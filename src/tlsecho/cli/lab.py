"""``tlsecho lab``: every bad certificate, policy and fault, one port each,
and a manifest of what a correct client must do with each."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tlsecho.cli.common import (
    add_endpoint_range,
    add_logging,
    add_loop,
    level,
    subcommand,
)
from tlsecho.config import ServerConfig
from tlsecho.lab.endpoints import render, start_lab
from tlsecho.logs import configure
from tlsecho.pki.certs import default_cert_dir
from tlsecho.server.run import run_on_loop

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = subcommand(
        sub,
        "lab",
        "every bad certificate, policy and server fault on its own port, with a manifest",
        "badssl's catalog and more (incomplete chain, SHA-1, RSA-1024, no serverAuth EKU,\n"
        "a CA as leaf, name constraints, 1000 SANs, a 10-deep chain, version pins) and\n"
        "every --fault, in one command. The table says what a correct client must get\n"
        "from each endpoint; --manifest writes the same as JSON for a program.",
        [
            "tlsecho lab --manifest lab.json",
            "tlsecho lab --port 0 --out /tmp/lab --manifest /tmp/lab/manifest.json",
            "tlsecho lab --mode http     # HTTPS endpoints: curl or a browser, as badssl.com",
        ],
    )
    add_endpoint_range(p, 11000, "the certificates", "lab")
    p.add_argument("--manifest", type=Path, help="write the manifest (JSON) here", metavar="FILE")
    p.add_argument(
        "--mode",
        choices=["nul", "http"],
        default="nul",
        help="what the endpoints speak after TLS: nul (the echo of a NUL-ended message; "
        "default) or http (tlsbin: HTTPS for curl and browsers)",
    )
    add_loop(p)
    add_logging(p)


def run(args: argparse.Namespace) -> int:
    configure(level(args), fmt=args.log_format)
    out = args.out or default_cert_dir() / "lab"
    main_log = logging.getLogger("tlsecho.main")
    # The table says where each endpoint listens: 36 servers' start-up and
    # shutdown lines would only bury it.
    quiet = main_log.level < logging.WARNING and not args.verbose

    async def serve_all() -> None:
        if quiet:
            main_log.setLevel(logging.WARNING)
        base = ServerConfig(loop=args.loop, mode=args.mode)
        group, doc = await start_lab(out, args.host, args.port, base)

        def show() -> None:
            if args.manifest:
                args.manifest.parent.mkdir(parents=True, exist_ok=True)
                args.manifest.write_text(json.dumps(doc, indent=2) + "\n")
            print(render(doc), flush=True)
            if args.manifest:
                print(f"manifest: {args.manifest}", flush=True)

        await group.run_until_signalled(show)

    run_on_loop(args.loop, serve_all())
    return 0
