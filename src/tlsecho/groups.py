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

__all__ = [
    "GROUPS_CONF",
    "GROUP_CODES",
    "KNOWN_GROUPS",
    "group_list",
    "openssl_loaded",
    "restrict_tls_groups",
    "use_groups",
]

GROUPS_CONF = Path(__file__).with_name("openssl.cnf")

#: ``--groups`` names -> OpenSSL's names (the IANA name, lower case, as
#: ``tlsecho.wire.tlsnames`` writes it, is accepted too).
KNOWN_GROUPS = {
    "x25519": "X25519",
    "x448": "X448",
    "p-256": "P-256",
    "secp256r1": "P-256",
    "prime256v1": "P-256",
    "p-384": "P-384",
    "secp384r1": "P-384",
    "p-521": "P-521",
    "secp521r1": "P-521",
    "ffdhe2048": "ffdhe2048",
    "ffdhe3072": "ffdhe3072",
    "ffdhe4096": "ffdhe4096",
    "ffdhe6144": "ffdhe6144",
    "ffdhe8192": "ffdhe8192",
    # Post-quantum hybrids and ML-KEM: OpenSSL 3.5 and later.
    "x25519mlkem768": "X25519MLKEM768",
    "secp256r1mlkem768": "SecP256r1MLKEM768",
    "secp384r1mlkem1024": "SecP384r1MLKEM1024",
    "mlkem512": "MLKEM512",
    "mlkem768": "MLKEM768",
    "mlkem1024": "MLKEM1024",
}


#: OpenSSL's names -> the IANA code points (what a ClientHello carries).
GROUP_CODES = {
    "X25519": 29,
    "X448": 30,
    "P-256": 23,
    "P-384": 24,
    "P-521": 25,
    "ffdhe2048": 256,
    "ffdhe3072": 257,
    "ffdhe4096": 258,
    "ffdhe6144": 259,
    "ffdhe8192": 260,
    "X25519MLKEM768": 4588,
    "SecP256r1MLKEM768": 4587,
    "SecP384r1MLKEM1024": 4589,
    "MLKEM512": 512,
    "MLKEM768": 513,
    "MLKEM1024": 514,
}


def group_list(text: str) -> list[str]:
    """``--groups`` (comma- or colon-separated, any case) as OpenSSL names.

    Raises:
        ValueError: an unknown or empty name.
    """
    names = [n.strip() for n in text.replace(":", ",").split(",")]
    if not any(names):
        raise ValueError("--groups needs at least one group")
    out = []
    for name in names:
        known = KNOWN_GROUPS.get(name.lower())
        if known is None:
            raise ValueError(
                f"--groups: unknown group {name!r} (known: X25519, X448, P-256, P-384, "
                "P-521, ffdhe2048..ffdhe8192, X25519MLKEM768, SecP256r1MLKEM768, "
                "SecP384r1MLKEM1024, MLKEM512/768/1024)"
            )
        out.append(known)
    return out


def use_groups(groups: list[str], directory: Path) -> Path:
    """Write an OpenSSL configuration with these groups (the rest as ours)
    into ``directory`` and point ``OPENSSL_CONF`` at it; return its path.
    Before OpenSSL loads, as :func:`restrict_tls_groups`."""
    text = GROUPS_CONF.read_text().replace(
        "Groups = X25519:prime256v1:secp384r1", "Groups = " + ":".join(groups)
    )
    path = directory / "openssl.cnf"
    path.write_text(text)
    os.environ["OPENSSL_CONF"] = str(path)
    return path


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
