"""Who the client is: its certificate's identity, and the access policy
that admits it or not (ghostunnel's ``--allow-*``, right after the handshake).

:class:`ClientIdentity` is what the log line, the JSON log and ``--mode
hello`` say about a client certificate: subject, common name and OUs, SANs
(DNS, IP, URI: SPIFFE IDs), issuer, serial, SHA-256 and the SPKI pin (base64
SHA-256 of the public key, as HPKP and Envoy write it). :class:`Policy`
admits a client when any ``--allow-*`` value matches.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from tlsecho.config import ServerConfig
from tlsecho.logs import get_logger

__all__ = [
    "ClientIdentity",
    "Policy",
    "check_client",
    "client_identity",
    "log_client_certificate",
]

log_conn = get_logger("echo")


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client certificate's identity (OpenSSL verified the chain)."""

    subject: str
    common_names: tuple[str, ...]
    organizational_units: tuple[str, ...]
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    uris: tuple[str, ...]
    """URI SANs: a SPIFFE ID is ``spiffe://trust-domain/path``."""
    issuer: str
    serial: str
    sha256: str
    """SHA-256 of the DER certificate, ``AB:CD:...``."""
    spki_pin: str
    """Base64 SHA-256 of the DER SubjectPublicKeyInfo."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON object (lists for the tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def client_identity(der: bytes) -> ClientIdentity:
    """The identity in a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ClientIdentity(
        subject=cert.subject.rfc4514_string(),
        common_names=_attributes(cert.subject, NameOID.COMMON_NAME),
        organizational_units=_attributes(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        dns=tuple(san.get_values_for_type(x509.DNSName)),
        ips=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        spki_pin=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(str(a.value) for a in name.get_attributes_for_oid(oid))


@dataclass(frozen=True)
class Policy:
    """Which client identities are admitted: any match admits; with no
    ``allow_*`` value at all, every verified client is."""

    allow_cn: tuple[str, ...] = ()
    allow_ou: tuple[str, ...] = ()
    allow_dns: tuple[str, ...] = ()
    allow_uri: tuple[str, ...] = ()
    """Exact URIs, or a SPIFFE trust domain (``spiffe://example.org`` or
    ``spiffe://example.org/``) that admits every ID under it."""
    allow_spki_pin: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.allow_cn or self.allow_ou or self.allow_dns or self.allow_uri) or bool(
            self.allow_spki_pin
        )

    def admits(self, who: ClientIdentity | None) -> str | None:
        """None if ``who`` is admitted, else why not (one line)."""
        if not self.active:
            return None
        if who is None:
            return "no client certificate"
        if (
            set(who.common_names) & set(self.allow_cn)
            or set(who.organizational_units) & set(self.allow_ou)
            or set(who.dns) & set(self.allow_dns)
            or any(_uri_matches(u, allowed) for u in who.uris for allowed in self.allow_uri)
            or who.spki_pin in self.allow_spki_pin
        ):
            return None
        return f"identity not allowed: {who.subject}" + (
            f" uri={','.join(who.uris)}" if who.uris else ""
        )


def _uri_matches(uri: str, allowed: str) -> bool:
    if uri == allowed:
        return True
    if allowed.startswith("spiffe://"):
        domain = allowed.removesuffix("/")
        # A bare trust domain admits every SPIFFE ID in it (not a longer domain).
        return "/" not in domain[len("spiffe://") :] and uri.startswith(domain + "/")
    return False


def log_client_certificate(sock: ssl.SSLSocket, tag: str) -> ClientIdentity | None:
    """Log the client certificate (or its absence); return its identity."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        log_conn.info("no client certificate", extra={"tag": tag})
        return None
    who = client_identity(der)
    sans = [*who.dns, *who.ips, *who.uris]
    log_conn.info(
        "client certificate subject=%r issuer=%r serial=%s sha256=%s spki=%s sans=%s",
        who.subject,
        who.issuer,
        who.serial,
        who.sha256,
        who.spki_pin,
        ",".join(sans) or "-",
        extra={"tag": tag},
    )
    return who


def check_client(
    sock: ssl.SSLSocket, tag: str, policy: Policy, config: ServerConfig
) -> tuple[str | None, str | None]:
    """Log the client certificate and judge it: its subject (None without
    one) and why it is refused (None when admitted). Nothing to do without
    ``--client-auth``."""
    if config.client_auth == "none":
        return None, None
    who = log_client_certificate(sock, tag)
    return (who.subject if who else None), policy.admits(who)
