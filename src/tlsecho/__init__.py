"""tlsecho: a TLS echo server, client and certificate tool.

The library API::

    from tlsecho import EchoServer, ServerConfig, EchoClient, ClientConfig

    async with EchoServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        result = await EchoClient(ClientConfig(host="127.0.0.1", port=server.port)).send()
"""

from tlsecho.certs import CertPair, make_self_signed, write_pair
from tlsecho.client import EchoClient, EchoResult, send
from tlsecho.config import DEFAULT_PARTS, ClientConfig, ServerConfig
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
from tlsecho.framing import NulFraming
from tlsecho.server import EchoServer, serve

__version__ = "0.1.0"

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
    "ListenError",
    "NulFraming",
    "PeerError",
    "ServerConfig",
    "TlsEchoError",
    "TlsHandshakeError",
    "__version__",
    "make_self_signed",
    "send",
    "serve",
    "write_pair",
]
