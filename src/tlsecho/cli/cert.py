"""``tlsecho cert``: a key and a self-signed certificate, or a small PKI."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlsecho.cli.common import csv, default_arg, subcommand
from tlsecho.errors import ConfigError
from tlsecho.pki.certs import write_pair, write_pki

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    c = subcommand(
        sub,
        "cert",
        "make a key and a self-signed certificate, or a small PKI (--ca)",
        "ECDSA P-256 by default, with subjectAltNames so that clients can keep hostname\n"
        "checking on. --ca makes a CA and, signed by it, a server and a client\n"
        "certificate; --bad adds the broken certificates a TLS client must refuse.",
        [
            "tlsecho cert --out certs",
            "tlsecho cert --ca --bad --out pki --hosts localhost,127.0.0.1,::1",
        ],
    )
    c.add_argument(
        "--key-type",
        choices=["ecdsa", "rsa"],
        default=default_arg(write_pki, "key_type"),
        help="default: %(default)s (P-256)",
    )
    c.add_argument(
        "--rsa-bits",
        type=int,
        help=f"RSA key size, with --key-type rsa (default: {default_arg(write_pki, 'rsa_bits')})",
        metavar="BITS",
    )
    c.add_argument(
        "--days",
        type=int,
        default=default_arg(write_pki, "days"),
        help="validity in days (default: %(default)s)",
        metavar="N",
    )
    c.add_argument(
        "--hosts",
        type=csv,
        default=default_arg(write_pki, "hosts"),
        help="comma-separated subjectAltName entries (default: localhost,127.0.0.1,::1)",
        metavar="H1,H2",
    )
    c.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="directory to write the files to (default: .)",
        metavar="DIR",
    )
    c.add_argument("--force", action="store_true", help="overwrite existing files")
    c.add_argument(
        "--ca",
        action="store_true",
        help="make a CA and, signed by it, a server and a client certificate",
    )
    c.add_argument(
        "--client-name",
        help="client certificate's common name, with --ca "
        f"(default: {default_arg(write_pki, 'client_name')})",
        metavar="NAME",
    )
    c.add_argument(
        "--client-uri",
        action="append",
        default=[],
        help="a URI SAN for the client certificate, with --ca (repeatable), e.g. a SPIFFE "
        "ID: spiffe://example.org/ns/prod/sa/api",
        metavar="URI",
    )
    c.add_argument(
        "--bad",
        action="store_true",
        help="with --ca: also expired, not-yet-valid, wrong-host, self-signed and "
        "unknown-CA certificates",
    )


def run(args: argparse.Namespace) -> int:
    # Options that cannot apply are mistakes, not silently ignored.
    if args.bad and not args.ca:
        raise ConfigError("--bad goes with --ca (the bad certificates are relative to the CA)")
    if args.client_name is not None and not args.ca:
        raise ConfigError("--client-name goes with --ca (only the PKI has a client certificate)")
    if args.client_uri and not args.ca:
        raise ConfigError("--client-uri goes with --ca (only the PKI has a client certificate)")
    if args.rsa_bits is not None and args.key_type != "rsa":
        raise ConfigError("--rsa-bits goes with --key-type rsa")
    common: dict[str, Any] = {
        "hosts": list(args.hosts),
        "key_type": args.key_type,
        "rsa_bits": args.rsa_bits or default_arg(write_pki, "rsa_bits"),
    }
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
        client_name=args.client_name or default_arg(write_pki, "client_name"),
        client_uris=tuple(args.client_uri),
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
