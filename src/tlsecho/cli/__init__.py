"""``tlsecho``: parse arguments, build config objects, call the library.

Only this package prints and chooses exit codes: 0 success, 1 a reported
error (one line on stderr), 2 a usage error (argparse's, or a
:class:`~tlsecho.errors.ConfigError`: an invalid setting, found before any
work is done). One module per subcommand, each
with ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from tlsecho._version import __version__
from tlsecho.cli import badssl, bench, cert, demo, lab, probe, send, serve
from tlsecho.cli.common import flag_of
from tlsecho.errors import ConfigError, TlsEchoError
from tlsecho.logs import JsonFormatter

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``tlsecho`` argument parser, every subcommand included."""
    parser = argparse.ArgumentParser(
        prog="tlsecho",
        description="TLS echo server, client and certificate tool.",
    )
    parser.add_argument("--version", action="version", version=f"tlsecho {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.add_parser(sub)
    return parser


# Each subcommand is the module of its name: one list serves the parser and
# the dispatch, so neither can forget one.
_SUBCOMMANDS = (cert, serve, send, badssl, lab, bench, probe, demo)
_RUN: dict[str, Callable[[argparse.Namespace], int]] = {
    m.__name__.rpartition(".")[2]: m.run for m in _SUBCOMMANDS
}


def _report(args: argparse.Namespace, exc: TlsEchoError) -> None:
    """The one error line (settings named by their flags): text, or a JSON
    record with --log-format json."""
    text = f"tlsecho {args.command}: error: {exc.render(flag_of)}"
    if getattr(args, "log_format", "text") == "json":
        record = logging.makeLogRecord(
            {"name": "tlsecho.main", "levelname": "ERROR", "levelno": logging.ERROR, "msg": text}
        )
        text = JsonFormatter().format(record)
    print(text, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tlsecho`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = _RUN[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return status
    except ConfigError as exc:
        _report(args, exc)
        return 2
    except TlsEchoError as exc:
        _report(args, exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (``| head``): end quietly, as a Unix
        # tool killed by SIGPIPE does, with nothing left to flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
