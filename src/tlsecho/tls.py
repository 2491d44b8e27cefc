"""SSLContext builders: one function per role, options ORed in.

The server follows Mozilla's server-side TLS guideline: ``intermediate``
(TLS 1.2 and 1.3, ECDHE with AEAD suites) by default, or ``modern`` (TLS 1.3
only); always server cipher preference, no compression, no renegotiation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from tlsecho.config import ClientConfig, ServerConfig, SniCert, TLSVersionName
from tlsecho.errors import CertificateError, ConfigError, setting
from tlsecho.pki.certs import CERT_NAME, default_cert_dir, ensure_default_pair
from tlsecho.pki.certs import fingerprint as der_fingerprint

__all__ = [
    "INTERMEDIATE_CIPHERS",
    "ServerTLS",
    "build_server_tls",
    "client_context",
    "default_trust_file",
    "server_name_of",
]

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

_VERSIONS: dict[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
# The server name a client asked for, kept on its SSLSocket by the SNI callback.
_SNI_ATTR = "_tlsecho_server_name"


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
            raise CertificateError(
                f"key {key} is encrypted: pass {setting('key_password')}"
            ) from None
        raise CertificateError(
            f"key {key} is not encrypted: drop {setting('key_password')}"
        ) from None
    except ValueError:
        if password is not None:
            raise CertificateError(
                f"cannot decrypt key {key}: wrong {setting('key_password')}?"
            ) from None
        raise CertificateError(f"{key} is not a valid PEM private key") from None


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, password: str | None) -> None:
    cert_data = _read(cert, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert_data:
        raise CertificateError(f"{cert} is not a PEM certificate")
    _check_key(key, password)
    try:
        # A password callable (never None) stops OpenSSL from prompting.
        ctx.load_cert_chain(cert, key, password=lambda: password or "")
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        # NO_CERTIFICATE_ASSIGNED: the key is of another type than the
        # certificate (an RSA key for an ECDSA certificate): a mismatch too.
        if reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            raise CertificateError(f"certificate {cert} does not match key {key}") from None
        raise CertificateError(f"cannot load {cert} / {key}: {reason}") from None


def _load_cafile(ctx: ssl.SSLContext, path: Path, what: str) -> None:
    _read(path, what)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{path} holds no usable PEM certificate: {exc.reason or exc}"
        ) from None


def _keylog(ctx: ssl.SSLContext, path: Path | None) -> None:
    # A hand-built SSLContext ignores SSLKEYLOGFILE; create_default_context
    # honours it, and so do we.
    target = path or (
        Path(os.environ["SSLKEYLOGFILE"]) if os.environ.get("SSLKEYLOGFILE") else None
    )
    if target is not None:
        try:
            ctx.keylog_filename = str(target)
        except OSError as exc:
            raise ConfigError(f"cannot write key log {target}: {exc.strerror or exc}") from None


#: What mode ``http`` offers when ``--alpn`` is not given: HTTP/2 first.
HTTP_ALPN = ("h2", "http/1.1")


def _versions(ctx: ssl.SSLContext, low: TLSVersionName | None, high: TLSVersionName | None) -> None:
    if low is not None:
        ctx.minimum_version = _VERSIONS[low]
    if high is not None:
        ctx.maximum_version = _VERSIONS[high]


def _policy_context(config: ServerConfig) -> ssl.SSLContext:
    """A server context with the policy of ``config`` and no certificate yet."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
    )
    if config.profile == "modern":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(INTERMEDIATE_CIPHERS)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _versions(ctx, config.min_version, config.max_version)
    if ctx.minimum_version > ctx.maximum_version:
        raise ConfigError(
            f"the TLS versions left by {setting('profile')} and {setting('max_version')} are empty"
        )
    if config.ciphers is not None:
        try:
            ctx.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"{setting('ciphers')} {config.ciphers!r}: no cipher matches"
            ) from None
    alpn = config.alpn or (HTTP_ALPN if config.mode == "http" else ())
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if config.session_tickets is not None:
        ctx.num_tickets = config.session_tickets
    if config.client_ca is not None and config.client_auth != "none":
        _load_cafile(ctx, config.client_ca, "client CA")
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if config.client_auth == "required" else ssl.CERT_OPTIONAL
        )
    _keylog(ctx, config.keylog)
    return ctx


def _name_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


@dataclass(frozen=True)
class ServerTLS:
    """The server's contexts: the default one (handed to new connections)
    and one per SNI certificate, chosen during the handshake."""

    context: ssl.SSLContext
    """The default context, with the SNI callback installed."""
    cert_path: Path | None
    """The default certificate presented (None for a context given ready-made)."""
    fingerprint: str
    """SHA-256 fingerprint of the default certificate."""
    sni: tuple[tuple[SniCert, ssl.SSLContext], ...] = ()

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        """The SNI context for ``server_name``: exact names first, then wildcards."""
        if not server_name:
            return None
        name = server_name.lower().rstrip(".")
        for sni, ctx in self.sni:
            if sni.name == name:
                return ctx
        for sni, ctx in self.sni:
            if _name_matches(sni.name, name):
                return ctx
        return None


def _fingerprint_of(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return der_fingerprint(cert.public_bytes(Encoding.DER))


def build_server_tls(config: ServerConfig) -> ServerTLS:
    """Build every server context from ``config``.

    Without ``config.cert``, the per-user default pair is used (made on first use).

    Raises:
        CertificateError: missing, unreadable, encrypted or mismatched files.
        ConfigError: an impossible policy (no cipher, empty version range).
    """
    config, _ = with_default_pair(config)
    cert, key = config.cert, config.key
    assert cert is not None and key is not None  # with_default_pair's promise
    ctx = _policy_context(config)
    _load_chain(ctx, cert, key, config.key_password)
    sni: list[tuple[SniCert, ssl.SSLContext]] = []
    for entry in config.sni:
        sctx = _policy_context(config)
        _load_chain(sctx, entry.cert, entry.key, config.key_password)
        sni.append((entry, sctx))
    tls = ServerTLS(ctx, cert, _fingerprint_of(cert), tuple(sni))

    def on_sni(sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        # Keep the name for the connection's log line, then switch certificate.
        with contextlib.suppress(AttributeError):
            setattr(sslobj, _SNI_ATTR, server_name)
        chosen = tls.context_for(server_name)
        if chosen is not None:
            sslobj.context = chosen

    ctx.sni_callback = on_sni
    return tls


def with_default_pair(config: ServerConfig) -> tuple[ServerConfig, bool | None]:
    """``config`` with the per-user default pair when it names no
    certificate (made on first use), and whether it was just made (``None``:
    the config had its own). The one place the default pair is resolved."""
    if config.cert is not None and config.key is not None:
        return config, None
    pair, created = ensure_default_pair()
    return dataclasses.replace(config, cert=pair.cert, key=pair.key), created


def server_name_of(sock: ssl.SSLSocket) -> str | None:
    """The server name (SNI) the client sent on ``sock``, if any."""
    name = getattr(sock, _SNI_ATTR, None)
    return name if isinstance(name, str) else None


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
        CertificateError: ``cafile``, ``cert`` or ``key`` unusable.
    """
    if config.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.cafile is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_cafile(ctx, config.cafile, "CA")
    else:
        ctx = ssl.create_default_context()
        default = default_trust_file()
        if default is not None:
            # A damaged default file: fall back to the system store alone.
            with contextlib.suppress(ssl.SSLError):
                ctx.load_verify_locations(cafile=default)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _versions(ctx, config.min_version, config.max_version)
    if config.cert is not None and config.key is not None:
        _load_chain(ctx, config.cert, config.key, None)
    if config.alpn:
        ctx.set_alpn_protocols(list(config.alpn))
    _keylog(ctx, config.keylog)
    return ctx


def offered_groups() -> tuple[int, ...]:
    """The key-exchange groups this process's OpenSSL allows (its
    configuration applies to every context), as IANA code points: read off
    a ClientHello it writes into memory."""
    from tlsecho.wire.clienthello import parse_client_hello

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="groups.check")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return parse_client_hello(out.read()).supported_groups
