"""The exception hierarchy: one root, split by whose fault it is.

Every message is one line a user can act on; the CLI prints ``str(exc)``.
"""

from __future__ import annotations

__all__ = [
    "CertificateError",
    "ConfigError",
    "ConnectError",
    "EchoMismatchError",
    "ListenError",
    "PeerError",
    "TlsEchoError",
    "TlsHandshakeError",
]


class TlsEchoError(Exception):
    """Root of every error tlsecho raises on purpose."""


# -- local misuse or local environment ------------------------------------------
class ConfigError(TlsEchoError):
    """A setting is invalid (bad flag combination, bad value)."""


class CertificateError(TlsEchoError):
    """A certificate or key file is missing, unreadable, encrypted or mismatched."""


class ListenError(TlsEchoError):
    """The server could not bind its listening sockets."""


# -- the remote peer or the network ---------------------------------------------
class PeerError(TlsEchoError):
    """The peer or the network did something that stopped the exchange."""


class ConnectError(PeerError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""


class TlsHandshakeError(PeerError):
    """The TLS handshake failed (certificate not trusted, hostname, protocol)."""


class EchoMismatchError(PeerError):
    """The echo differed from what was sent, or the server closed early."""
