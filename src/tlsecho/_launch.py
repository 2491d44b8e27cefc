"""The ``tlsecho`` command's entry point: set OpenSSL up, then run the CLI.

Kept apart from :mod:`tlsecho.cli` so that nothing here imports ``ssl``
before :func:`~tlsecho.groups.restrict_tls_groups` has run.
"""

from __future__ import annotations

from tlsecho.groups import restrict_tls_groups

__all__ = ["main"]


def main() -> int:
    """Run ``tlsecho`` with the command line of this process."""
    restrict_tls_groups()
    from tlsecho.cli import main as cli_main

    return cli_main()
