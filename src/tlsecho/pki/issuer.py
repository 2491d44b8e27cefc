"""The one issuer every certificate tlsecho makes comes from, in trustme's
shape (``CA.issue_cert``): ``tlsecho cert`` and ``cert --ca``, the broken
kinds of ``--bad``, and the lab's chains, weak and odd certificates.

Sans-IO but for :meth:`Issuer.load`: keys in, ``x509.Certificate`` out;
:func:`pem` and :func:`key_pem` give the bytes a caller writes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsecho.errors import CertificateError, ConfigError

__all__ = ["Issuer", "PrivateKey", "Usage", "general_name", "general_names", "key_pem", "pem"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def general_name(host: str) -> x509.GeneralName:
    """An IP address as iPAddress, anything else as a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"invalid host name for the certificate: {host!r}")
    return x509.DNSName(host)


Usage = Literal["server", "client", "ca", "ca-only"]
"""What a certificate is for: a server or client leaf, a CA, or (the lab's
``ca-leaf``) a CA certificate with keyCertSign alone."""


def _key_usage(usage: Usage, key: PrivateKey) -> x509.KeyUsage:
    is_ca = usage in ("ca", "ca-only")
    return x509.KeyUsage(
        digital_signature=usage != "ca-only",
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey) and not is_ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=usage == "ca",
        encipher_only=False,
        decipher_only=False,
    )


_EKU = {"server": [ExtendedKeyUsageOID.SERVER_AUTH], "client": [ExtendedKeyUsageOID.CLIENT_AUTH]}


def _sign(
    key: PrivateKey,
    subject: x509.Name,
    issuer: x509.Name,
    signer: PrivateKey,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    names: list[x509.GeneralName] | None = None,
    usage: Usage = "server",
    eku: list[x509.ObjectIdentifier] | None = None,
    extra: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] | None = None,
) -> x509.Certificate:
    """The one place a certificate is built and signed. ``eku`` defaults to
    what ``usage`` says (a CA has none)."""
    public = key.public_key()
    is_ca = usage in ("ca", "ca-only")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # CA:FALSE on leaves and the key identifiers keep the certificates
        # acceptable to OpenSSL's X509_STRICT mode (Python >= 3.13's default).
        # No path length on a CA: the lab chains intermediates under it.
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(usage, key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    eku = eku if eku is not None else _EKU.get(usage)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if extra is not None:
        builder = extra(builder)
    return builder.sign(signer, hashes.SHA256())


class Issuer:
    """Where every certificate tlsecho makes comes from (trustme's ``CA``):
    the PKI's CA and leaves, the broken kinds and the lab's chains;
    :meth:`self_signed` for the pair of ``tlsecho cert`` and for roots."""

    def __init__(self, cert: x509.Certificate, key: PrivateKey) -> None:
        self.cert, self.key = cert, key

    @staticmethod
    def self_signed(key: PrivateKey, subject: x509.Name, **kw: Any) -> x509.Certificate:
        """A certificate ``key`` signs itself (the keywords of :meth:`issue`)."""
        return _sign(key, subject, subject, key, **kw)

    @classmethod
    def new_ca(cls, key: PrivateKey, subject: x509.Name, **kw: Any) -> Issuer:
        """A self-signed CA (``not_before``, ``not_after``)."""
        return cls(cls.self_signed(key, subject, usage="ca", **kw), key)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> Issuer:
        """The CA of files written before (``tlsecho cert --ca``)."""
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CertificateError(f"{key_file}: not an ECDSA or RSA key")
        return cls(cert, key)

    def issue(self, key: PrivateKey, subject: x509.Name, **kw: Any) -> x509.Certificate:
        """``key``'s certificate signed by this CA: ``not_before``,
        ``not_after``, ``names`` (subjectAltName), ``usage``, ``eku``, ``extra``."""
        return _sign(key, subject, self.cert.subject, self.key, **kw)

    def intermediate(self, subject: x509.Name, **kw: Any) -> Issuer:
        """A CA signed by this one, with a new P-256 key."""
        key = ec.generate_private_key(ec.SECP256R1())
        return Issuer(self.issue(key, subject, usage="ca", **kw), key)


def general_names(
    hosts: tuple[str, ...] | list[str], uris: tuple[str, ...] = ()
) -> list[x509.GeneralName]:
    """subjectAltName entries: IP addresses, DNS names, URIs."""
    names = [general_name(h) for h in hosts]
    return names + [x509.UniformResourceIdentifier(u) for u in uris]


def pem(*certs: x509.Certificate) -> bytes:
    """Certificates as PEM, in the order given (a leaf, then its chain)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: PrivateKey) -> bytes:
    """An unencrypted PKCS#8 PEM key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
