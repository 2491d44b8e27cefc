"""Key and certificate generation with ``cryptography`` (no openssl CLI).

``tlsecho cert`` does what ``openssl req -newkey rsa:2048 -nodes -keyout K
-x509 -days 365 -out C`` did in the original example, with an ECDSA P-256 key
by default and a subjectAltName, so clients can keep hostname checking on.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsecho.errors import CertificateError, ConfigError

__all__ = [
    "CERT_NAME",
    "DEFAULT_HOSTS",
    "KEY_NAME",
    "CertPair",
    "KeyType",
    "default_cert_dir",
    "ensure_default_pair",
    "make_self_signed",
    "write_pair",
]

KeyType = Literal["ecdsa", "rsa"]
CERT_NAME = "tlsecho.crt"
KEY_NAME = "tlsecho.key"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPair:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"invalid host name for the certificate: {host!r}")
    return x509.DNSName(host)


def make_self_signed(
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    *,
    key_type: KeyType = "ecdsa",
    rsa_bits: int = 2048,
    days: int = 365,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """Make a self-signed server certificate.

    Args:
        hosts: subjectAltName entries; IP addresses become iPAddress names.
            The first one is also the subject's common name.
        key_type: ``ecdsa`` (P-256) or ``rsa``.
        rsa_bits: RSA modulus size, with ``key_type="rsa"``.
        days: validity from ``now``.
        now: the start of validity (default: the current time, less one
            minute to allow for clock skew).

    Returns:
        ``(certificate_pem, unencrypted_pkcs8_key_pem)``.

    Raises:
        ConfigError: no hosts, a bad host, bad ``days`` or ``rsa_bits``.
    """
    if not hosts:
        raise ConfigError("a certificate needs at least one host name")
    if days < 1:
        raise ConfigError(f"--days must be at least 1, not {days}")
    names = [_general_name(h) for h in hosts]
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "ecdsa":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        if rsa_bits < 2048:
            raise ConfigError(f"--rsa-bits must be at least 2048, not {rsa_bits}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        raise ConfigError(f"unknown key type {key_type!r}: use ecdsa or rsa")
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=1)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsecho"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64]),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # CA:FALSE and the key identifiers keep the certificate acceptable to
        # OpenSSL's X509_STRICT mode (Python >= 3.13's client default).
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_type == "rsa",
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise CertificateError(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CertificateError(f"cannot write {path}: {reason}") from None
    try:
        # O_CREAT's mode only applies to a new file: an overwritten key must
        # end up 0600 too.
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_pair(
    out: Path,
    *,
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    key_type: KeyType = "ecdsa",
    rsa_bits: int = 2048,
    days: int = 365,
    force: bool = False,
) -> CertPair:
    """Make a self-signed certificate and write ``tlsecho.crt`` and ``tlsecho.key``.

    The key file is created with mode 0600. Existing files are left alone
    unless ``force`` is true.

    Raises:
        CertificateError: a file exists (without ``force``) or cannot be written.
        ConfigError: bad parameters (see :func:`make_self_signed`).
    """
    cert_path, key_path = out / CERT_NAME, out / KEY_NAME
    if not force:
        for p in (cert_path, key_path):
            if p.exists():
                raise CertificateError(f"{p} exists; pass --force to overwrite it")
    if not out.is_dir():
        raise CertificateError(f"cannot write to {out}: not a directory")
    cert_pem, key_pem = make_self_signed(hosts, key_type=key_type, rsa_bits=rsa_bits, days=days)
    _write(key_path, key_pem, 0o600, force)
    _write(cert_path, cert_pem, 0o644, force)
    return CertPair(cert_path, key_path)


def default_cert_dir() -> Path:
    """The per-user directory of the server's default certificate.

    ``$XDG_DATA_HOME/tlsecho`` (usually ``~/.local/share/tlsecho``) on Linux,
    the platform's equivalent elsewhere.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("tlsecho", appauthor=False))


def ensure_default_pair() -> tuple[CertPair, bool]:
    """Return the default certificate pair, creating it on first use.

    A lock file serialises first use, so two servers started at once on a new
    machine cannot write a certificate and a key that do not match.

    Returns:
        The pair and whether it was created by this call.

    Raises:
        CertificateError: the directory cannot be created or written.
    """
    d = default_cert_dir()
    pair = CertPair(d / CERT_NAME, d / KEY_NAME)
    if pair.cert.exists() and pair.key.exists():
        return pair, False
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(d / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CertificateError(f"cannot create {d}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if pair.cert.exists() and pair.key.exists():
            return pair, False
        return write_pair(d, force=True), True
    finally:
        os.close(lock)
