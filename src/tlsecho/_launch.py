"""The ``tlsecho`` command's entry point: set OpenSSL up, then run the CLI.

Kept apart from :mod:`tlsecho.cli` so that nothing here imports ``ssl``:
OpenSSL reads its configuration once, when the ``_ssl`` module loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main", "restrict_tls_groups"]

GROUPS_CONF = Path(__file__).with_name("openssl.cnf")


def restrict_tls_groups() -> bool:
    """Limit key exchange to X25519, P-256 and P-384 (Mozilla's groups).

    Works only before ``ssl`` is first imported in this process, and leaves
    an ``OPENSSL_CONF`` the user set alone.

    Returns:
        Whether the restriction will apply.
    """
    if "_ssl" in sys.modules or os.environ.get("OPENSSL_CONF"):
        return False
    os.environ["OPENSSL_CONF"] = str(GROUPS_CONF)
    return True


def main() -> int:
    """Run ``tlsecho`` with the command line of this process."""
    restrict_tls_groups()
    from tlsecho.cli import main as cli_main

    return cli_main()
