"""How a TLS client's failures read: one line, with a hint where one helps.

Used by ``send`` (:mod:`tlsecho.client.echo`) and ``probe`` alike.
"""

from __future__ import annotations

import socket
import ssl

from tlsecho.config import ClientConfig
from tlsecho.errors import ConnectError, PeerError, TlsHandshakeError, setting

__all__ = ["alert_message", "map_connect_error", "map_handshake_error"]

# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID and X509_V_ERR_CERT_HAS_EXPIRED.
_CERT_NOT_YET_VALID, _CERT_HAS_EXPIRED = 9, 10

# TLS alerts by which a server refuses our client certificate. With TLS 1.3
# they arrive after the client's handshake is done, on the first read.
_CLIENT_CERT_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate: "
    f"pass {setting('cert')} FILE {setting('key')} FILE",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server refused the handshake (a client certificate "
    f"may be required: pass {setting('cert')} FILE {setting('key')} FILE)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server refused our client certificate (bad certificate)",
    "TLSV1_ALERT_UNKNOWN_CA": "the server refused our client certificate: "
    "it is not signed by a CA the server trusts",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the server refused our client certificate: it has expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the server refused our client certificate",
    "TLSV1_ALERT_DECRYPT_ERROR": "the server refused our client certificate (decrypt error)",
    # Said as what the server sent: a server under --fault alert=... sends it
    # whatever the versions are, so "no version in common" would mislead.
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server sent a protocol_version alert "
    "(no TLS version in common, or a server that refuses this client's)",
    "TLSV1_ALERT_NO_APPLICATION_PROTOCOL": "the server sent a no_application_protocol alert "
    "(no ALPN protocol in common)",
}


def alert_message(exc: ssl.SSLError) -> str | None:
    """The one-line meaning of an alert by which a server refused us, if known."""
    return _CLIENT_CERT_ALERTS.get(exc.reason or "")


def map_handshake_error(exc: ssl.SSLError, config: ClientConfig) -> TlsHandshakeError:
    """Translate a handshake's ``ssl.SSLError`` into a one-line error with a hint."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        if exc.verify_code == 62 or "Hostname mismatch" in detail:
            name = config.verify_name
            return TlsHandshakeError(
                f"certificate verify failed: hostname mismatch, the certificate is not valid "
                f"for {name!r}; connect with a name it lists, or {setting('insecure')}"
            )
        if exc.verify_code in (_CERT_NOT_YET_VALID, _CERT_HAS_EXPIRED):
            # The trust is right; the certificate's dates are not.
            return TlsHandshakeError(
                f"certificate verify failed: {detail} (the server's certificate is at fault, "
                "not what this client trusts)"
            )
        hint = (
            (
                f"pass {setting('cafile')} FILE (the server's certificate or its CA), or "
                f"{setting('insecure')}"
            )
            if config.cafile is None
            else f"is {config.cafile} the server's certificate or its CA?"
        )
        return TlsHandshakeError(f"certificate verify failed: {detail}; {hint}")
    known = alert_message(exc)
    if known:
        return TlsHandshakeError(known)
    if exc.reason == "WRONG_VERSION_NUMBER":
        # What OpenSSL says when the first bytes back are not a TLS record.
        return TlsHandshakeError(
            f"TLS handshake failed: {config.host} port {config.port} does not speak TLS "
            "(wrong version number): is it a plain-text or HTTP port?"
        )
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    return TlsHandshakeError(f"TLS handshake failed: {reason}")


def map_connect_error(exc: OSError, config: ClientConfig) -> PeerError:
    """Translate a connect's ``OSError`` into a one-line error."""
    where = f"{config.host} port {config.port}"
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"connection refused by {where}: is tlsecho serve running?")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve {config.host!r}: {exc.strerror}")
    if isinstance(exc, ConnectionResetError):
        hint = "" if config.proxy_header else " (does the server expect a PROXY header first?)"
        return ConnectError(f"connection reset by {where} during the handshake{hint}")
    reason = (exc.strerror or str(exc) or exc.__class__.__name__).lower()
    return ConnectError(f"cannot connect to {where}: {reason}")
