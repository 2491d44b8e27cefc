"""tlsecho: a TLS echo server, client and certificate tool.

The library API::

    from tlsecho import EchoServer, ServerConfig, EchoClient, ClientConfig

    async with EchoServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        result = await EchoClient(ClientConfig(host="127.0.0.1", port=server.port)).send()

Names are imported on first use, so that ``import tlsecho`` does not load
``ssl`` (the command line configures OpenSSL before it does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tlsecho._version import __version__

_EXPORTS = {
    "CertPair": "tlsecho.certs",
    "Pki": "tlsecho.certs",
    "make_self_signed": "tlsecho.certs",
    "write_pair": "tlsecho.certs",
    "write_pki": "tlsecho.certs",
    "EchoClient": "tlsecho.client",
    "EchoResult": "tlsecho.client",
    "send": "tlsecho.client",
    "DEFAULT_PARTS": "tlsecho.config",
    "ClientConfig": "tlsecho.config",
    "ServerConfig": "tlsecho.config",
    "SniCert": "tlsecho.config",
    "CertificateError": "tlsecho.errors",
    "ConfigError": "tlsecho.errors",
    "ConnectError": "tlsecho.errors",
    "EchoMismatchError": "tlsecho.errors",
    "ListenError": "tlsecho.errors",
    "PeerError": "tlsecho.errors",
    "TlsEchoError": "tlsecho.errors",
    "TlsHandshakeError": "tlsecho.errors",
    "LineFraming": "tlsecho.framing",
    "NulFraming": "tlsecho.framing",
    "RawFraming": "tlsecho.framing",
    "ProbeResult": "tlsecho.probe",
    "probe": "tlsecho.probe",
    "EchoServer": "tlsecho.server",
    "serve": "tlsecho.server",
    "restrict_tls_groups": "tlsecho.groups",
}

__all__ = [
    "DEFAULT_PARTS",
    "CertPair",
    "CertificateError",
    "ClientConfig",
    "ConfigError",
    "ConnectError",
    "EchoClient",
    "EchoMismatchError",
    "EchoResult",
    "EchoServer",
    "LineFraming",
    "ListenError",
    "NulFraming",
    "PeerError",
    "Pki",
    "ProbeResult",
    "RawFraming",
    "ServerConfig",
    "SniCert",
    "TlsEchoError",
    "TlsHandshakeError",
    "__version__",
    "make_self_signed",
    "probe",
    "restrict_tls_groups",
    "send",
    "serve",
    "write_pair",
    "write_pki",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tlsecho' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from tlsecho.certs import CertPair, Pki, make_self_signed, write_pair, write_pki
    from tlsecho.client import EchoClient, EchoResult, send
    from tlsecho.config import DEFAULT_PARTS, ClientConfig, ServerConfig, SniCert
    from tlsecho.errors import (
        CertificateError,
        ConfigError,
        ConnectError,
        EchoMismatchError,
        ListenError,
        PeerError,
        TlsEchoError,
        TlsHandshakeError,
    )
    from tlsecho.framing import LineFraming, NulFraming, RawFraming
    from tlsecho.groups import restrict_tls_groups
    from tlsecho.probe import ProbeResult, probe
    from tlsecho.server import EchoServer, serve
