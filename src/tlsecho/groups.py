"""Key-exchange groups: point OpenSSL at our configuration before it loads.

Imports nothing that loads ``ssl``: OpenSSL reads its configuration once,
when the ``_ssl`` module is first imported, so this must run before that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["GROUPS_CONF", "restrict_tls_groups"]

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
