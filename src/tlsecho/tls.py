"""SSLContext builders: one function per role, options ORed in.

The server follows Mozilla's "intermediate" server-side TLS guideline: TLS 1.2
and 1.3, AEAD suites with forward secrecy only, server cipher preference, no
compression, no renegotiation.
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tlsecho.certs import CERT_NAME, default_cert_dir
from tlsecho.config import ClientConfig
from tlsecho.errors import CertificateError

__all__ = ["INTERMEDIATE_CIPHERS", "client_context", "default_trust_file", "server_context"]

#: Mozilla intermediate TLS 1.2 suites (TLS 1.3 suites are OpenSSL's default).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise CertificateError(f"{what} file is a directory: {path}") from None
    except OSError as exc:
        raise CertificateError(f"cannot read {what} file {path}: {exc.strerror}") from None


def _check_key(key: Path, password: str | None) -> None:
    """Fail with a clear message before OpenSSL would prompt on the terminal."""
    data = _read(key, "key")
    if b"-----BEGIN" not in data:
        raise CertificateError(f"{key} is not a PEM private key")
    try:
        load_pem_private_key(data, password.encode() if password is not None else None)
    except TypeError:
        if password is None:
            raise CertificateError(f"key {key} is encrypted: pass --key-password") from None
        raise CertificateError(f"key {key} is not encrypted: drop --key-password") from None
    except ValueError:
        if password is not None:
            raise CertificateError(f"cannot decrypt key {key}: wrong --key-password?") from None
        raise CertificateError(f"{key} is not a valid PEM private key") from None


def server_context(cert: Path, key: Path, key_password: str | None = None) -> ssl.SSLContext:
    """Build the server's context (Mozilla intermediate profile).

    Raises:
        CertificateError: missing, unreadable, encrypted or mismatched files.
    """
    cert_data = _read(cert, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert_data:
        raise CertificateError(f"{cert} is not a PEM certificate")
    _check_key(key, key_password)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
    )
    try:
        # A password callable (never None) stops OpenSSL from prompting.
        ctx.load_cert_chain(cert, key, password=lambda: key_password or "")
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(f"certificate {cert} does not match key {key}") from None
        raise CertificateError(f"cannot load {cert} / {key}: {reason}") from None
    return ctx


def default_trust_file() -> Path | None:
    """The server's default certificate, if this user has one."""
    path = default_cert_dir() / CERT_NAME
    return path if path.is_file() else None


def client_context(config: ClientConfig) -> ssl.SSLContext:
    """Build the client's context: verification and hostname checks on.

    With ``cafile`` set, only that file is trusted. Without it, the system
    store plus the default server certificate (``tlsecho serve`` without
    ``--cert``) when it exists. ``insecure`` turns verification off.

    Raises:
        CertificateError: ``cafile`` missing or not PEM certificates.
    """
    if config.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.cafile is not None:
        _read(config.cafile, "CA")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cafile=config.cafile)
        except ssl.SSLError as exc:
            raise CertificateError(
                f"{config.cafile} holds no usable PEM certificate: {exc.reason or exc}"
            ) from None
    else:
        ctx = ssl.create_default_context()
        default = default_trust_file()
        if default is not None:
            # A damaged default file: fall back to the system store alone.
            with contextlib.suppress(ssl.SSLError):
                ctx.load_verify_locations(cafile=default)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
