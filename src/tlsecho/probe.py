"""``tlsecho probe``: connect, handshake, and report what was negotiated.

Polite to any TLS server: it sends no application data, reads only to
collect TLS 1.3 session tickets, and closes with close_notify. It then
reconnects once with the session to tell whether resumption works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tlsecho.client import map_connect_error, map_handshake_error
from tlsecho.config import ClientConfig
from tlsecho.errors import PeerError
from tlsecho.tls import client_context

__all__ = ["CertInfo", "ProbeResult", "probe"]

_TICKET_WAIT = 0.3


@dataclass(frozen=True)
class CertInfo:
    """One certificate of the server's chain."""

    subject: str
    issuer: str
    sans: list[str]
    not_before: str
    not_after: str
    days_left: int
    key: str
    """Key type and size, e.g. ``ECDSA P-256`` or ``RSA 2048``."""
    signature_algorithm: str
    sha256: str


@dataclass
class ProbeResult:
    """What ``probe`` found."""

    host: str
    port: int
    server_name: str | None
    """The SNI sent (None for an IP address)."""
    tls_version: str = "-"
    cipher: str = "-"
    cipher_bits: int = 0
    group: str | None = None
    """Key-exchange group, where this Python can tell (3.11 cannot)."""
    alpn: str | None = None
    resumed: bool | None = None
    """Whether a second connection resumed the session (None: not tried)."""
    verified: bool = False
    verify_error: str | None = None
    connect_ms: float = 0.0
    handshake_ms: float = 0.0
    chain: list[CertInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


def _key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _describe(der: bytes, now: dt.datetime) -> CertInfo:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        sans = []
    sig = cert.signature_algorithm_oid._name  # e.g. "ecdsa-with-SHA256"
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=sans,
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        days_left=(cert.not_valid_after_utc - now).days,
        key=_key_description(cert),
        signature_algorithm=sig,
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def _chain(sock: ssl.SSLSocket, verified: bool) -> list[bytes]:
    """DER certificates the server sent (leaf first)."""
    # Public on Python >= 3.13; the same methods exist privately on 3.10-3.12.
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter = getattr(sock, name, None) or getattr(sock._sslobj, name, None)  # type: ignore[attr-defined]
    if getter is not None:
        certs = getter() or []
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in certs]  # type: ignore[attr-defined]
    der = sock.getpeercert(binary_form=True)
    return [der] if der else []


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _connect(
    config: ClientConfig, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSocket, float, float]:
    t0 = time.perf_counter()
    try:
        raw = socket.create_connection((config.host, config.port), timeout=config.timeout)
    except TimeoutError:
        raise PeerError(f"timed out after {config.timeout:g} s connecting") from None
    except OSError as exc:
        raise map_connect_error(exc, config) from None
    t1 = time.perf_counter()
    name = config.server_hostname or (None if _is_ip(config.host) else config.host)
    if ctx.check_hostname and name is None:
        name = config.host  # IP addresses are checked against iPAddress names
    sock = ctx.wrap_socket(
        raw, server_hostname=name, do_handshake_on_connect=False, session=session
    )
    try:
        sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return sock, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3


def _session_and_close(sock: ssl.SSLSocket) -> ssl.SSLSession | None:
    """Collect TLS 1.3 tickets (they follow the handshake), close with
    close_notify, and return the session to resume."""
    sock.settimeout(_TICKET_WAIT)
    # OSError covers the timeout (no data is expected) and TLS errors.
    with contextlib.suppress(OSError):
        sock.recv(1)  # processes post-handshake messages
    session = sock.session
    with contextlib.suppress(OSError):
        sock.unwrap()
    sock.close()
    return session


def probe(config: ClientConfig, *, resume: bool = True) -> ProbeResult:
    """Connect to ``config.host:port`` and report the handshake.

    Verification failures do not raise: they are reported in the result
    (``verified``, ``verify_error``), and the rest is read from a second,
    unverified handshake.

    Raises:
        ConnectError: no TCP connection.
        PeerError: the handshake failed for another reason, or timed out.
        CertificateError: ``cafile``, ``cert`` or ``key`` unusable.
    """
    result = ProbeResult(
        config.host,
        config.port,
        config.server_hostname or (None if _is_ip(config.host) else config.host),
    )
    ctx = client_context(config)
    try:
        sock, result.connect_ms, result.handshake_ms = _connect(config, ctx)
        result.verified = not config.insecure
    except ssl.SSLCertVerificationError as exc:
        result.verify_error = str(map_handshake_error(exc, config))
        insecure = dataclasses.replace(config, insecure=True)
        ctx = client_context(insecure)
        try:
            sock, result.connect_ms, result.handshake_ms = _connect(insecure, ctx)
        except ssl.SSLError as exc2:
            raise map_handshake_error(exc2, config) from None
    except ssl.SSLError as exc:
        raise map_handshake_error(exc, config) from None
    except TimeoutError:
        raise PeerError(f"timed out after {config.timeout:g} s in the handshake") from None
    now = dt.datetime.now(dt.UTC)
    try:
        result.tls_version = sock.version() or "-"
        cipher = sock.cipher()
        if cipher:
            result.cipher, result.cipher_bits = cipher[0], cipher[2]
        group = getattr(sock, "group", None)
        result.group = group() if callable(group) else None
        result.alpn = sock.selected_alpn_protocol()
        result.chain = [_describe(der, now) for der in _chain(sock, result.verified)]
    finally:
        session = _session_and_close(sock)
    result.connect_ms = round(result.connect_ms, 3)
    result.handshake_ms = round(result.handshake_ms, 3)
    if resume:
        result.resumed = False
        if session is not None:
            again_config = config if result.verified else dataclasses.replace(config, insecure=True)
            try:
                again, _, _ = _connect(again_config, ctx, session)
            except OSError:  # ssl.SSLError included
                pass
            else:
                result.resumed = again.session_reused
                _session_and_close(again)
    return result
