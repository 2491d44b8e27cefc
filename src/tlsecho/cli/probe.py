"""``tlsecho probe``: connect and report what was negotiated."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tlsecho.cli.common import (
    add_client_tls,
    client_config,
    default,
    flag_of,
    peer_console,
    subcommand,
)
from tlsecho.client.probe import ProbeResult, probe
from tlsecho.config import ClientConfig, parse_listen
from tlsecho.errors import PeerError
from tlsecho.server.net import format_address

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    pr = subcommand(
        sub,
        "probe",
        "connect and report what was negotiated",
        "TLS version, cipher, ALPN, SNI, the certificate chain and its verification,\n"
        "and whether a second connection resumes the session. Sends no application\n"
        "data: polite to any TLS server.",
        [
            "tlsecho probe localhost:10000 --cafile pki/ca.crt",
            "tlsecho probe example.test:443 --json",
        ],
    )
    pr.add_argument(
        "target", metavar="HOST[:PORT]", help="server to probe (port 10000 unless given)"
    )
    add_client_tls(pr)
    # Probe always verifies and reports the result; --insecure elsewhere means
    # "do not verify", so this is named apart. The old spelling still works.
    pr.add_argument(
        "--no-fail",
        dest="exit_zero",
        action="store_true",
        help="report a verification failure but exit 0",
    )
    pr.add_argument("--insecure", dest="old_insecure", action="store_true", help=argparse.SUPPRESS)
    pr.add_argument(
        "--no-resume", action="store_true", help="do not reconnect to test session resumption"
    )
    pr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pr.add_argument(
        "--timeout",
        type=float,
        default=default(ClientConfig, "timeout"),
        help="seconds (default: %(default)g)",
        metavar="SECONDS",
    )


def run(args: argparse.Namespace) -> int:
    if args.old_insecure:
        print(
            "tlsecho probe: warning: --insecure is now --no-fail (probe always verifies)",
            file=sys.stderr,
        )
        args.exit_zero = True
    host, port = parse_listen(args.target, default_port=10000, what="probe")
    config = client_config(args, host=host, port=port)
    try:
        result = probe(config, resume=not args.no_resume)
    except PeerError as exc:
        if args.json:  # a program reading JSON gets JSON, failures included
            print(json.dumps({"host": host, "port": port, "error": str(exc)}, indent=2))
        raise
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_probe(result)
    if result.verify_error and not args.exit_zero:
        print(f"tlsecho probe: error: {_verify_error(result)}", file=sys.stderr)
        return 1
    return 0


def _verify_error(r: ProbeResult) -> str:
    """The verification failure, with its hints in the command line's words."""
    exc = r.verify_exception
    return exc.render(flag_of) if exc is not None else str(r.verify_error)


def _print_probe(r: ProbeResult) -> None:
    from rich.table import Table

    console = peer_console()
    summary = Table(title=f"TLS probe of {format_address((r.host, r.port))}", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    verify = "ok" if r.verified else f"FAILED: {_verify_error(r)}"
    hrr = " (after a HelloRetryRequest)" if r.hello_retry else ""
    rows = [
        ("TLS version", r.tls_version),
        ("cipher", f"{r.cipher} ({r.cipher_bits} bits)"),
        ("key exchange group", (r.group or "n/a (not in clear text)") + hrr),
        ("JA3S", f"{r.ja3s_hash} ({r.ja3s})" if r.ja3s else "n/a"),
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
        cert.add_column(overflow="fold")  # a fingerprint is folded, never cut
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
