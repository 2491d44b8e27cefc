"""The exception hierarchy: one root, split by whose fault it is.

Every message is one line a user can act on. A message names a setting with
:func:`setting` (``f"pass {setting('cafile')} FILE"``): ``str(exc)`` says the
library's name for it (``cafile``), and the command line says its flag
(``--cafile``) through :meth:`TlsEchoError.render`.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable

__all__ = [
    "CertificateError",
    "ConfigError",
    "ConnectError",
    "EchoMismatchError",
    "ListenError",
    "PeerError",
    "TlsEchoError",
    "TlsHandshakeError",
    "failure_reason",
    "setting",
]

# Private-use characters around a setting's name: never in a real message.
_SETTING = re.compile("\ue000([a-z_]+)\ue001")


def setting(name: str) -> str:
    """A setting (a config field) named in an error message; see the module doc."""
    return f"\ue000{name}\ue001"


class TlsEchoError(Exception):
    """Root of every error tlsecho raises on purpose."""

    def __str__(self) -> str:
        return _SETTING.sub(r"\1", super().__str__())

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with each setting named by ``name_of`` (the CLI: its flag)."""
        return _SETTING.sub(lambda m: name_of(m[1]), super().__str__())


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


#: The reason of a connection that sent plain HTTP to a TLS port (OpenSSL's
#: ``HTTP_REQUEST``); in ``--mode http`` it is also answered with a 400.
PLAIN_HTTP = "plain HTTP request sent to a TLS port"


def failure_reason(exc: BaseException) -> str:
    """A short, stable, lower-case phrase for why an exchange failed: the one
    place that turns an ``OSError``, ``ssl.SSLError`` or our own error into
    the ``reason`` of a log line, a metric label or a bench error kind."""
    import ssl  # not at import time: tlsecho.groups must run before ssl loads

    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLEOFError):  # its reason is often None: "ssleoferror"
        return "closed without close_notify"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "HTTP_REQUEST":  # OpenSSL's "http request", said plainly
            return PLAIN_HTTP
        return (exc.reason or exc.__class__.__name__).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.errno:
        if isinstance(exc, ConnectionResetError):
            return "reset by peer"
        if isinstance(exc, BrokenPipeError):
            return "broken pipe"
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    # Our own exceptions (PROXY errors, timeouts) carry a readable message.
    return str(exc) or exc.__class__.__name__
