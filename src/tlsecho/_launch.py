"""The ``tlsecho`` command's entry point: set OpenSSL up, then run the CLI.

Kept apart from :mod:`tlsecho.cli` so that nothing here loads OpenSSL
before :func:`~tlsecho.groups.restrict_tls_groups` has run.
"""

from __future__ import annotations

import os
import sys

from tlsecho.groups import GROUPS_CONF, openssl_loaded, restrict_tls_groups

__all__ = ["main"]


def main() -> int:
    """Run ``tlsecho`` with the command line of this process."""
    if not os.environ.get("OPENSSL_CONF") and openssl_loaded():
        # Something loaded OpenSSL before us (a sitecustomize, a coverage or
        # profiling hook importing hashlib), so it has read its configuration
        # already: start again with ours in the environment, once (the new
        # process sees OPENSSL_CONF set and goes straight on).
        os.environ["OPENSSL_CONF"] = str(GROUPS_CONF)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "tlsecho", *sys.argv[1:]])
    restrict_tls_groups()
    from tlsecho.cli import main as cli_main

    return cli_main()
