"""Options shared by several subcommands, and how arguments become configs.

Defaults come from the config dataclasses (:func:`default`); help texts show
them with ``%(default)s``, so there is no second copy of a default here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tlsecho.config import ClientConfig
from tlsecho.wire.framing import ECHO_MODES, MODES

__all__ = [
    "add_client_tls",
    "add_endpoint",
    "add_logging",
    "add_loop",
    "add_mode",
    "add_versions",
    "client_config",
    "config_from_args",
    "csv",
    "default",
    "default_arg",
    "flag_of",
    "level",
    "peer_console",
    "seconds_or_off",
    "subcommand",
    "workers",
]

C = TypeVar("C")
#: A parser or an argument group of one.
Container = argparse._ActionsContainer


def subcommand(
    sub: Any, name: str, summary: str, description: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A subcommand's parser: its one-line summary (in ``tlsecho --help``), a
    description and examples (in ``tlsecho NAME --help``)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def default(cls: type[Any], name: str) -> Any:
    """The default of field ``name`` of the dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no default for {name}")


def default_arg(func: Callable[..., Any], name: str) -> Any:
    """The default of the keyword argument ``name`` of ``func``."""
    return inspect.signature(func).parameters[name].default


#: Settings whose flag is not ``--`` + the field name with dashes.
_FLAGS = {
    "profile": "--tls-profile",
    "server_hostname": "--servername",
    "client_uris": "--client-uri",
}


def flag_of(field: str) -> str:
    """The command line's flag for a config field (``key_password`` -> ``--key-password``):
    how the CLI names a setting that a library error message names."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def config_from_args(cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    """Build the dataclass ``cls`` from the arguments named like its fields
    (``dest=`` matches the field name); ``overrides`` take precedence."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return cls(**values)


def add_logging(p: Container, default_level: str = "info") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging: the original transcript lines"
    )
    g.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    g.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help=f"log level (default: {default_level})",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text (the original's 'name: message'; default) or one JSON object per line",
    )


def level(args: argparse.Namespace, default_level: str = "info") -> str:
    """The log level that -v, -q and --log-level ask for."""
    if args.verbose:
        return "DEBUG"
    if args.quiet:
        return "WARNING"
    return str(args.log_level or default_level).upper()


def host_name(text: str) -> str:
    """``--host``: a name or address, IPv6 with or without brackets
    (``::1`` or ``[::1]``, as the HOST:PORT arguments write it)."""
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    return text


def add_endpoint(p: Container) -> None:
    p.add_argument(
        "--host",
        type=host_name,
        default=default(ClientConfig, "host"),
        help="host name or address, IPv6 as ::1 or [::1] (default: %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=default(ClientConfig, "port"),
        help="TCP port (default: %(default)s)",
    )


def add_endpoint_range(p: Container, first_port: int, what: str, folder: str) -> None:
    """``--host``, ``--port`` (the first of consecutive ports) and ``--out``
    of a catalog of listeners (``badssl``, ``lab``)."""
    p.add_argument(
        "--host",
        type=host_name,
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=first_port,
        help="first port (default: %(default)s; 0: free ports)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"directory for {what} (default: a '{folder}' folder in the per-user data directory)",
        metavar="DIR",
    )


def add_loop(p: Container, default_loop: str = "auto") -> None:
    what = "auto = uvloop when installed" if default_loop == "auto" else default_loop
    p.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default=default_loop,
        help=f"event loop (default: {what})",
    )


def csv(text: str) -> tuple[str, ...]:
    """``a, b,c`` to ``("a", "b", "c")``; an empty list is a mistake."""
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    if not items:
        raise argparse.ArgumentTypeError(
            f"expected one or more comma-separated names, not {text!r}"
        )
    return items


def workers(text: str) -> int:
    """``N`` or ``auto`` (one per CPU)."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', not {text!r}") from None


def seconds_or_off(text: str) -> float | None:
    """Seconds, 0 meaning never."""
    value = float(text)
    return None if value == 0 else value


def add_mode(p: Container, *, hello: bool = True, http: bool = False) -> None:
    """``--mode``; ``hello`` where the command speaks it (not ``bench``),
    ``http`` on ``serve``."""
    choices = [m for m in MODES if (hello or m in ECHO_MODES) and (http or m != "http")]
    p.add_argument(
        "--mode",
        choices=choices,
        default=default(ClientConfig, "mode"),
        help="framing: nul (the original: a message ended by a NUL byte; default), "
        "line (each line echoed whole) or raw (every byte, until the peer closes)"
        + (
            "; hello: no echo, the server answers with what the client's ClientHello "
            "offered, as JSON"
            if hello
            else ""
        )
        + (
            "; http: tlsbin, HTTPS (HTTP/1.1, and h2 by ALPN) answering each request "
            "with what arrived, as JSON (an HTML page for browsers)"
            if http
            else ""
        ),
    )


def add_versions(p: Container) -> None:
    p.add_argument("--min-version", choices=["1.2", "1.3"], help="lowest TLS version")
    p.add_argument("--max-version", choices=["1.2", "1.3"], help="highest TLS version")
    p.add_argument("--alpn", type=csv, default=(), metavar="P1,P2", help="ALPN protocols to offer")
    p.add_argument(
        "--keylog",
        type=Path,
        help="append TLS secrets in NSS key log format for Wireshark (default: $SSLKEYLOGFILE)",
        metavar="FILE",
    )


def add_client_tls(p: Container) -> None:
    p.add_argument(
        "--cafile",
        type=Path,
        help="trusted PEM certificates "
        "(default: the system store and the server's default certificate)",
        metavar="FILE",
    )
    p.add_argument(
        "--servername",
        dest="server_hostname",
        metavar="NAME",
        help="name for SNI and the certificate check (default: the host)",
    )
    p.add_argument("--cert", type=Path, help="client certificate to present (mTLS)", metavar="FILE")
    p.add_argument("--key", type=Path, help="private key for --cert", metavar="FILE")
    add_versions(p)


def client_config(args: argparse.Namespace, **overrides: Any) -> ClientConfig:
    """The ClientConfig of send, bench and probe, from the options of
    :func:`add_client_tls` and those named like ClientConfig's fields."""
    return config_from_args(ClientConfig, args, **overrides)


def peer_console() -> Any:
    """A rich console for tables of what a peer sent: no emoji codes (a
    fingerprint's ``:CD:`` would become one), no markup (``[b]`` in a
    certificate subject would be read as style)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, emoji=False, markup=False)
