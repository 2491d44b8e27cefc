"""The ``tlsecho`` command's entry point: set OpenSSL up, then run the CLI.

Kept apart from :mod:`tlsecho.cli` so that nothing here loads OpenSSL
before :func:`~tlsecho.groups.restrict_tls_groups` has run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tlsecho.groups import GROUPS_CONF, group_list, openssl_loaded, restrict_tls_groups, use_groups

__all__ = ["main"]

# Where a --groups configuration lives (set for the re-executed process).
_GROUPS_DIR = "TLSECHO_GROUPS_DIR"


def main() -> int:
    """Run ``tlsecho`` with the command line of this process."""
    groups = _groups_argument(sys.argv[1:])
    # As every other error of a subcommand says it: "tlsecho serve: error: ...".
    command = next((a for a in sys.argv[1:2] if not a.startswith("-")), None)
    prog = f"tlsecho {command}" if command else "tlsecho"
    if os.environ.get(_GROUPS_DIR):
        # Re-executed below with our --groups configuration: clean it up here.
        atexit.register(shutil.rmtree, os.environ[_GROUPS_DIR], True)
    elif not os.environ.get("OPENSSL_CONF"):
        if groups is not None:
            try:
                names = group_list(groups)
            except ValueError as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr)
                return 2
            # The file must outlive this process's workers: it goes with the run.
            directory = tempfile.mkdtemp(prefix="tlsecho-groups-")
            os.environ[_GROUPS_DIR] = directory
            atexit.register(shutil.rmtree, directory, True)
            use_groups(names, Path(directory))
        if openssl_loaded():
            # Something loaded OpenSSL before us (a sitecustomize, a coverage or
            # profiling hook importing hashlib), so it has read its configuration
            # already: start again with ours in the environment, once (the new
            # process sees OPENSSL_CONF set and goes straight on).
            os.environ.setdefault("OPENSSL_CONF", str(GROUPS_CONF))
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, "-m", "tlsecho", *sys.argv[1:]])
    elif groups is not None:
        print(
            f"{prog}: error: --groups cannot apply: OPENSSL_CONF is set "
            f"({os.environ['OPENSSL_CONF']}); set the groups there, or unset it",
            file=sys.stderr,
        )
        return 2
    restrict_tls_groups()
    from tlsecho.cli import main as cli_main

    return cli_main()


def _groups_argument(argv: list[str]) -> str | None:
    """The value of ``--groups`` on the command line (OpenSSL reads its
    configuration before the CLI parses anything, so it is looked up here)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--groups" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--groups="):
            return arg.split("=", 1)[1]
    return None
