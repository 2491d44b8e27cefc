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
from cryptography.x509.oid import NameOID

from tlsecho.config import ServerConfig
from tlsecho.logs import get_logger
from tlsecho.pki.certs import fingerprint

__all__ = [
    "CertificateUnreadable",
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


class CertificateUnreadable(ValueError):
    """A certificate whose DER we cannot read (not one OpenSSL verified)."""


def client_identity(der: bytes) -> ClientIdentity:
    """The identity in a DER certificate.

    Every certificate OpenSSL accepted has one: no subjectAltName (common for
    client certificates; cryptography 51 refuses to build an empty one), an
    empty subject, SAN types we do not list, a key type cryptography does not
    know, or extensions it cannot parse all give empty fields, never an
    exception.

    Raises:
        CertificateUnreadable: ``der`` is not a certificate at all.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateUnreadable(f"unreadable certificate: {exc}") from None
    san = _san(cert)
    return ClientIdentity(
        subject=cert.subject.rfc4514_string(),
        common_names=_attributes(cert.subject, NameOID.COMMON_NAME),
        organizational_units=_attributes(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        dns=tuple(n.value for n in san if isinstance(n, x509.DNSName)),
        ips=tuple(str(n.value) for n in san if isinstance(n, x509.IPAddress)),
        uris=tuple(n.value for n in san if isinstance(n, x509.UniformResourceIdentifier)),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        sha256=fingerprint(der),
        spki_pin=base64.b64encode(hashlib.sha256(spki_der(der)).digest()).decode(),
    )


def _san(cert: x509.Certificate) -> list[x509.GeneralName]:
    """The subjectAltName's names; none without one, or when the extensions
    cannot be parsed (a duplicate extension, a malformed SAN): no name then
    matches an ``--allow-*``, so such a client is refused, never admitted."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return []
    return list(ext.value)


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(
        a.value if isinstance(a.value, str) else a.value.hex()
        for a in name.get_attributes_for_oid(oid)
    )


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: its tag, where its content starts and where it ends."""
    if pos + 2 > len(der):
        raise CertificateUnreadable("unreadable certificate: truncated DER")
    tag, first = der[pos], der[pos + 1]
    start = pos + 2
    if first & 0x80:
        n = first & 0x7F
        if not 0 < n <= 4 or start + n > len(der):
            raise CertificateUnreadable("unreadable certificate: bad DER length")
        length = int.from_bytes(der[start : start + n], "big")
        start += n
    else:
        length = first
    end = start + length
    if end > len(der):
        raise CertificateUnreadable("unreadable certificate: truncated DER")
    return tag, start, end


def spki_der(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate, as it stands in it
    (RFC 5280 4.1): read from the bytes, so a key type cryptography does not
    know still has its pin.

    Raises:
        CertificateUnreadable: not a certificate's DER.
    """
    _, tbs, _ = _tlv(der, 0)  # Certificate
    _, pos, _ = _tlv(der, tbs)  # tbsCertificate
    if pos < len(der) and der[pos] == 0xA0:  # [0] version
        pos = _tlv(der, pos)[2]
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        pos = _tlv(der, pos)[2]
    tag, _, end = _tlv(der, pos)
    if tag != 0x30:
        raise CertificateUnreadable("unreadable certificate: no SubjectPublicKeyInfo")
    return der[pos:end]


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
