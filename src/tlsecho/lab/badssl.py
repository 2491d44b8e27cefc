"""Bad-TLS endpoints: what badssl.com does for HTTPS, for raw TLS.

One echo listener per broken property, each with the certificate or policy
that a correct TLS client must refuse (or must meet). Used by
``tlsecho badssl`` and by the pytest fixture ``tlsecho_bad_endpoints``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlsecho.config import ServerConfig
from tlsecho.pki.certs import CertPair, Pki
from tlsecho.pki.kinds import BAD_KINDS

__all__ = ["ENDPOINTS", "Endpoint", "endpoint_config", "endpoint_configs"]


@dataclass(frozen=True)
class Endpoint:
    """One broken property."""

    name: str
    """Short name, e.g. ``expired``."""
    expect: str
    """What a correct client must do."""
    what: str
    """What the endpoint is (the lab's table says it too)."""
    cert: str = "server"
    """Which certificate of the PKI to serve (``server`` or a bad kind)."""
    options: tuple[tuple[str, Any], ...] = ()
    """ServerConfig fields to set."""


#: Every bad server certificate (certs.BAD_KINDS), then the policies.
ENDPOINTS: tuple[Endpoint, ...] = (
    *(Endpoint(k.name, k.expect, k.what, cert=k.name) for k in BAD_KINDS if k.side == "server"),
    Endpoint(
        "client-cert-required",
        "present client.crt (signed by ca.crt), or be refused",
        "client.crt required (without it: alert certificate_required)",
        options=(("client_auth", "required"),),
    ),
    Endpoint(
        "tls1.2-only",
        "negotiate TLS 1.2 (a TLS 1.3-only client is refused)",
        "TLS 1.2 only (a TLS 1.3-only client is refused)",
        options=(("min_version", "1.2"), ("max_version", "1.2")),
    ),
    Endpoint(
        "tls1.3-only",
        "negotiate TLS 1.3 (a TLS 1.2-only client is refused)",
        "TLS 1.3 only (a TLS 1.2-only client is refused)",
        options=(("min_version", "1.3"),),
    ),
    Endpoint(
        "alpn-required",
        "offer ALPN 'echo', or be refused after the handshake",
        "ALPN 'echo' required (without it: closed after the handshake)",
        options=(("alpn", ("echo",)), ("alpn_required", True)),
    ),
)


def endpoint_config(
    base: ServerConfig, pki: Pki, pair: CertPair, options: dict[str, Any], port: int
) -> ServerConfig:
    """``base`` serving ``pair`` on ``port`` with ``options`` (ServerConfig
    fields; client authentication trusts the PKI's CA)."""
    if options.get("client_auth"):
        options = {**options, "client_ca": pki.ca.cert}
    return dataclasses.replace(
        base, port=port, listen=(), cert=Path(pair.cert), key=Path(pair.key), **options
    )


def endpoint_configs(
    pki: Pki, base: ServerConfig, first_port: int = 0
) -> list[tuple[Endpoint, ServerConfig]]:
    """One ServerConfig per endpoint, on ``first_port``, ``first_port + 1``, …
    (each a free port when ``first_port`` is 0), based on ``base``."""
    out = []
    for i, ep in enumerate(ENDPOINTS):
        pair = pki.server if ep.cert == "server" else pki.bad[ep.cert]
        port = first_port + i if first_port else 0
        out.append((ep, endpoint_config(base, pki, pair, dict(ep.options), port)))
    return out
