"""``tlsecho serve``: the TLS echo server."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from tlsecho.cli.common import (
    add_endpoint,
    add_logging,
    add_loop,
    add_mode,
    add_versions,
    config_from_args,
    default,
    level,
    seconds_or_off,
    subcommand,
    workers,
)
from tlsecho.config import Engine, ServerConfig, default_engine, parse_listen, parse_sni
from tlsecho.errors import ConfigError
from tlsecho.logs import configure
from tlsecho.server.net import raise_fd_limit
from tlsecho.server.run import run_on_loop, run_until_signalled
from tlsecho.wire.faults import RECORD_FAULTS, FaultSpec, parse_fault

__all__ = ["add_parser", "run"]


def _d(name: str) -> Any:
    return default(ServerConfig, name)


def add_parser(sub: Any) -> None:
    s = subcommand(
        sub,
        "serve",
        "run the TLS echo server",
        "The original protocol by default: every byte before the first NUL is echoed\n"
        "once, in order; the NUL ends the session with close_notify. Without --cert, a\n"
        "per-user certificate is made on first use and trusted by tlsecho send.",
        [
            "tlsecho serve",
            "tlsecho serve --cert pki/server.crt --key pki/server.key --client-ca pki/ca.crt",
            "tlsecho serve --listen 127.0.0.1:10000 --listen [::1]:10000 --workers auto",
        ],
    )
    where = s.add_argument_group("where and how to listen")
    add_endpoint(where)
    where.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="listen here (repeatable; IPv6 as [ADDRESS]:PORT); replaces --host/--port",
    )
    where.add_argument(
        "--workers",
        type=workers,
        default=1,
        metavar="N",
        help="N server processes on the same port "
        "(SO_REUSEPORT; default: %(default)s; auto: one per CPU)",
    )
    add_loop(where, _d("loop"))
    where.add_argument(
        "--engine",
        choices=["sslsocket", "membio"],
        default=None,
        help="how bytes move: sslsocket (OpenSSL on the socket) or membio (TLS over "
        "memory BIOs, every byte through tlsecho). Default: membio when a --fault acts "
        "on our records (corrupt, slice, latency...), else $TLSECHO_ENGINE or "
        f"{_d('engine')}",
    )
    echo = s.add_argument_group("what to echo")
    add_mode(echo, http=True)
    echo.add_argument(
        "--max-line",
        type=int,
        default=_d("max_line"),
        help="longest line in --mode line, newline included (default: %(default)s)",
        metavar="BYTES",
    )
    echo.add_argument(
        "--max-header",
        type=int,
        default=_d("max_header"),
        metavar="BYTES",
        help="--mode http: request line and headers at most (else 431; default: %(default)s)",
    )
    echo.add_argument(
        "--max-body",
        type=int,
        default=_d("max_body"),
        metavar="BYTES",
        help="--mode http: request body at most (else 413; default: %(default)s)",
    )
    echo.add_argument(
        "--request-timeout",
        type=float,
        default=_d("request_timeout"),
        metavar="SECONDS",
        help="--mode http: time from a request's first byte to its last (else 408; "
        "default: %(default)g)",
    )
    echo.add_argument(
        "--proxy-protocol",
        choices=["off", "v1", "v2", "any"],
        default=_d("proxy_protocol"),
        help="read an HAProxy PROXY header before the handshake (default: %(default)s)",
    )
    echo.add_argument(
        "--fingerprint",
        action=argparse.BooleanOptionalAction,
        default=_d("fingerprint"),
        help="read each ClientHello: ja4= in the log line, what the client offered "
        "(versions, suites, groups, ALPN, JA3) in --log-format json; costs 5-9 %% of a "
        "new connection (default: off)",
    )
    tls = s.add_argument_group("TLS")
    tls.add_argument(
        "--cert",
        type=Path,
        help="PEM certificate (default: a per-user certificate made on first use)",
        metavar="FILE",
    )
    tls.add_argument("--key", type=Path, help="PEM private key for --cert", metavar="FILE")
    tls.add_argument(
        "--key-password",
        default=os.environ.get("TLSECHO_KEY_PASSWORD"),
        help="password of an encrypted key (or set TLSECHO_KEY_PASSWORD)",
        metavar="PASSWORD",
    )
    tls.add_argument(
        "--tls-profile",
        dest="profile",
        choices=["intermediate", "modern"],
        default=_d("profile"),
        help="Mozilla server-side TLS: intermediate (1.2 and 1.3) or modern (1.3) "
        "(default: %(default)s)",
    )
    add_versions(tls)
    tls.add_argument(
        "--ciphers",
        help="OpenSSL cipher string for TLS 1.2 (default: the profile's)",
        metavar="LIST",
    )
    tls.add_argument(
        "--alpn-required",
        action="store_true",
        help="refuse a client with no ALPN protocol in common",
    )
    tls.add_argument(
        "--session-tickets",
        type=int,
        default=_d("session_tickets"),
        help="TLS 1.3 session tickets per handshake (default: %(default)s; OpenSSL's is 2; "
        "0 disables resumption)",
        metavar="N",
    )
    tls.add_argument(
        "--client-ca",
        type=Path,
        help="CA certificates for client certificates (mTLS)",
        metavar="FILE",
    )
    tls.add_argument(
        "--client-auth",
        choices=["none", "optional", "required"],
        help="client certificates (default: required with --client-ca, else none)",
    )
    for flag, what in (
        ("--allow-cn", "common name"),
        ("--allow-ou", "organizational unit"),
        ("--allow-dns", "DNS SAN"),
        ("--allow-uri", "URI SAN, or spiffe://TRUST.DOMAIN for any SPIFFE ID in it"),
        ("--allow-spki-pin", "SPKI pin (base64 SHA-256 of the public key)"),
    ):
        tls.add_argument(
            flag,
            action="append",
            default=[],
            metavar="VALUE",
            help=f"admit only client certificates with this {what} (repeatable; any "
            "--allow-* match admits; others: end=identity-refused, close_notify, no echo)",
        )
    tls.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[=ARG][@SNI][~P]",
        help="misbehave on purpose (repeatable): stall, close-after-hello, reset-after-hello, "
        "alert=NAME (e.g. alert=protocol_version), limit=N, stall-after=N (echo bytes); "
        "@SNI limits it to clients asking for that name, ~P fires it with probability P; "
        "the log line says fault=...",
    )
    tls.add_argument(
        "--groups",
        metavar="G1,G2",
        help="key-exchange groups, in order (default: X25519,P-256,P-384): e.g. P-384 to "
        "make an X25519 client retry (HelloRetryRequest), or X25519MLKEM768 "
        "(post-quantum, OpenSSL 3.5+); for the whole process",
    )
    tls.add_argument(
        "--sni",
        action="append",
        default=[],
        metavar="NAME=CERT:KEY",
        help="serve CERT to clients asking for NAME (repeatable; wildcards like *.example.test)",
    )
    tls.add_argument(
        "--reload-interval",
        type=float,
        metavar="SECONDS",
        help="poll the certificate files and reload when they change (SIGHUP always reloads)",
    )
    limits = s.add_argument_group("limits and timeouts")
    limits.add_argument(
        "--handshake-timeout",
        type=float,
        default=_d("handshake_timeout"),
        help="seconds for the PROXY header and the handshake (default: %(default)g)",
        metavar="SECONDS",
    )
    limits.add_argument(
        "--shutdown-timeout",
        type=float,
        default=_d("shutdown_timeout"),
        help="seconds for flushing and the TLS close (default: %(default)g)",
        metavar="SECONDS",
    )
    limits.add_argument(
        "--idle-timeout",
        type=seconds_or_off,
        default=_d("idle_timeout"),
        metavar="SECONDS",
        help="close a session with no bytes either way for this long "
        "(default: %(default)g; 0: never)",
    )
    limits.add_argument(
        "--max-session",
        type=seconds_or_off,
        default=_d("max_session"),
        metavar="SECONDS",
        help="close a session this long after its handshake (default: never)",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="stop accepting while N connections are open "
        "(default: the file-descriptor limit less 64)",
    )
    limits.add_argument(
        "--drain-timeout",
        type=float,
        default=_d("drain_timeout"),
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, time open sessions get to finish (default: %(default)g); "
        "a second signal stops at once",
    )
    ops = s.add_argument_group("logs and metrics")
    ops.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics",
    )
    add_logging(ops)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig that ``serve``'s arguments describe (field by field
    where the option is named like the field)."""
    faults = tuple(_faults(args.fault))
    return config_from_args(
        ServerConfig,
        args,
        engine=args.engine or engine_for(faults),
        listen=tuple(parse_listen(x) for x in args.listen),
        sni=tuple(parse_sni(x) for x in args.sni),
        client_auth=args.client_auth or ("required" if args.client_ca else "none"),
        allow_cn=tuple(args.allow_cn),
        allow_ou=tuple(args.allow_ou),
        allow_dns=tuple(args.allow_dns),
        allow_uri=tuple(args.allow_uri),
        allow_spki_pin=tuple(args.allow_spki_pin),
        faults=faults,
        metrics=parse_listen(args.metrics, what="--metrics") if args.metrics else None,
    )


def engine_for(faults: tuple[FaultSpec, ...]) -> Engine:
    """The engine when ``--engine`` is not given: a user who asks for a
    record fault asked for the engine that has them (only an explicit
    ``--engine sslsocket`` with one is an error)."""
    if any(f.name in RECORD_FAULTS for f in faults):
        return "membio"
    return default_engine()


def _faults(specs: list[str]) -> list[FaultSpec]:
    try:
        return [parse_fault(spec) for spec in specs]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_groups(text: str) -> list[str]:
    """The groups ``--groups`` asked for are the ones OpenSSL uses (an
    OpenSSL that lacks one ignores the whole list, silently).

    Raises:
        ConfigError: a group this OpenSSL does not have.
    """
    import ssl

    from tlsecho.groups import GROUP_CODES, group_list
    from tlsecho.tls import offered_groups
    from tlsecho.wire.tlsnames import GROUPS, names

    try:
        wanted = group_list(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    got = offered_groups()
    if tuple(GROUP_CODES[g] for g in wanted) != got:
        missing = [g for g in wanted if GROUP_CODES[g] not in got]
        pq = any("MLKEM" in g for g in missing)
        raise ConfigError(
            f"--groups {text}: this OpenSSL ({ssl.OPENSSL_VERSION}) does not offer "
            f"{', '.join(missing) or 'them in that order'}"
            + ("; post-quantum groups need OpenSSL 3.5 or later" if pq else "")
            + f" (it would use {', '.join(names(GROUPS, got))})"
        )
    return wanted


def run(args: argparse.Namespace) -> int:
    configure(level(args), fmt=args.log_format)
    config = build_config(args)
    if args.engine is None and config.engine == "membio" and default_engine() != "membio":
        record = next(f.label for f in config.faults if f.name in RECORD_FAULTS)
        logging.getLogger("tlsecho.main").info(
            "--fault %s acts on our TLS records: on the memory-BIO engine (--engine membio)",
            record,
        )
    if args.groups is not None:
        groups = check_groups(args.groups)
        logging.getLogger("tlsecho.main").info("key-exchange groups: %s", ", ".join(groups))
    # Each connection is a descriptor: allow as many as the hard limit does.
    raise_fd_limit()
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.workers > 1:
        from tlsecho.server.workers import run_workers

        status = run_workers(config, args.workers, args.log_format)
        logging.getLogger("tlsecho.main").info("closing event loop")
        return status
    run_on_loop(config.loop, run_until_signalled(config))
    logging.getLogger("tlsecho.main").info("closing event loop")
    return 0
