"""Key-exchange groups: point OpenSSL at our configuration before it loads.

Imports nothing that loads OpenSSL: libcrypto reads its configuration once,
when it is initialised, and that happens when ``_ssl`` *or* ``_hashlib`` is
first imported (``import hashlib`` is enough: a sitecustomize, a coverage
hook or a profiler can do it before tlsecho runs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["GROUPS_CONF", "openssl_loaded", "restrict_tls_groups"]

GROUPS_CONF = Path(__file__).with_name("openssl.cnf")


def openssl_loaded() -> bool:
    """Whether OpenSSL has been initialised in this process (its
    configuration file is read then, and never again)."""
    return "_ssl" in sys.modules or "_hashlib" in sys.modules


def restrict_tls_groups() -> bool:
    """Limit key exchange to X25519, P-256 and P-384 (Mozilla's groups).

    Works only before OpenSSL is initialised in this process (before ``ssl``
    or ``hashlib`` is first imported), and leaves an ``OPENSSL_CONF`` the
    user set alone.

    Returns:
        Whether the restriction will apply.
    """
    if os.environ.get("OPENSSL_CONF") or openssl_loaded():
        return False
    os.environ["OPENSSL_CONF"] = str(GROUPS_CONF)
    return True
