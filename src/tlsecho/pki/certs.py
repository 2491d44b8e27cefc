"""Key and certificate generation with ``cryptography`` (no openssl CLI).

``tlsecho cert`` does what ``openssl req -newkey rsa:2048 -nodes -keyout K
-x509 -days 365 -out C`` did in the original example, with an ECDSA P-256 key
by default and a subjectAltName, so clients can keep hostname checking on.
``tlsecho cert --ca`` makes a small PKI (a CA, a server and a client
certificate), and ``--bad`` adds the broken certificates a tester of TLS
clients needs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from tlsecho.errors import CertificateError, ConfigError, setting
from tlsecho.pki.issuer import Issuer, PrivateKey, general_name, general_names, key_pem, pem
from tlsecho.pki.kinds import BAD_KINDS, CertKind

__all__ = [
    "BAD_KINDS",
    "CERT_NAME",
    "DEFAULT_HOSTS",
    "KEY_NAME",
    "BadKind",
    "CertPair",
    "CertificateInfo",
    "Issuer",
    "KeyType",
    "Pki",
    "default_cert_dir",
    "describe_certificate",
    "ensure_default_pair",
    "fingerprint",
    "make_self_signed",
    "write_pair",
    "write_pki",
]

KeyType = Literal["ecdsa", "rsa"]
CERT_NAME = "tlsecho.crt"
KEY_NAME = "tlsecho.key"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
_ORG = "tlsecho"


@dataclass(frozen=True)
class CertPair:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _new_key(key_type: KeyType, rsa_bits: int) -> PrivateKey:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        if rsa_bits < 2048:
            raise ConfigError(f"{setting('rsa_bits')} must be at least 2048, not {rsa_bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ConfigError(f"unknown key type {key_type!r}: use ecdsa or rsa")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, _upper_bound(cn)),
        ]
    )


def _upper_bound(cn: str) -> str:
    """``cn`` cut to a common name's upper bound, 64 (RFC 5280 ub-common-name),
    counted in UTF-8 bytes as cryptography 51 counts it (before: characters;
    a non-ASCII ``--client-name`` of 40 characters then raised), never
    splitting a character."""
    return cn.encode()[:64].decode("utf-8", "ignore")


def _start(now: dt.datetime | None) -> dt.datetime:
    # One minute back allows for clock skew between hosts.
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=1)


def _check(hosts: tuple[str, ...] | list[str], days: int) -> None:
    if not hosts:
        raise ConfigError("a certificate needs at least one host name")
    if days < 1:
        raise ConfigError(f"{setting('days')} must be at least 1, not {days}")
    for h in hosts:
        general_name(h)


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
    _check(hosts, days)
    key = _new_key(key_type, rsa_bits)
    start = _start(now)
    cert = Issuer.self_signed(
        key,
        _name(hosts[0]),
        not_before=start,
        not_after=start + dt.timedelta(days=days),
        names=general_names(hosts),
    )
    return pem(cert), key_pem(key)


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise CertificateError(f"{path} exists; pass {setting('force')} to overwrite it") from None
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


def _prepare(out: Path, names: list[str], force: bool) -> None:
    if not force:
        for n in names:
            if (out / n).exists():
                raise CertificateError(f"{out / n} exists; pass {setting('force')} to overwrite it")
    if not out.exists():
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise CertificateError(f"cannot create {out}: {exc.strerror}") from None
    if not out.is_dir():
        raise CertificateError(f"cannot write to {out}: not a directory")


def _save(out: Path, stem: str, cert: bytes, key: bytes, force: bool) -> CertPair:
    pair = CertPair(out / f"{stem}.crt", out / f"{stem}.key")
    _write(pair.key, key, 0o600, force)
    _write(pair.cert, cert, 0o644, force)
    return pair


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
    _check(hosts, days)  # before anything is written: a bad value leaves no directory
    _prepare(out, [CERT_NAME, KEY_NAME], force)
    cert_bytes, key_bytes = make_self_signed(hosts, key_type=key_type, rsa_bits=rsa_bits, days=days)
    return _save(out, "tlsecho", cert_bytes, key_bytes, force)


@dataclass(frozen=True)
class Pki:
    """The files of ``tlsecho cert --ca`` (and ``--bad``)."""

    ca: CertPair
    server: CertPair
    client: CertPair
    bad: dict[str, CertPair]
    """Broken certificates by kind (empty without ``bad``)."""

    def index(self) -> list[tuple[str, str, str]]:
        """``(file, what it is, what a correct client does)`` for each certificate."""
        rows = [
            (self.ca.cert.name, "the CA: trust this (--cafile / --client-ca)", "-"),
            (self.server.cert.name, "server certificate for the hosts, signed by the CA", "accept"),
            (self.client.cert.name, "client certificate (mTLS), signed by the CA", "-"),
        ]
        for kind, pair in self.bad.items():
            bad = _BAD_BY_NAME[kind]
            rows.append((pair.cert.name, bad.what, bad.expect))
        return rows


#: The kinds of ``--bad`` (tlsecho.pki.kinds has the whole catalogue).
BadKind = CertKind
_BAD_BY_NAME = {k.name: k for k in BAD_KINDS}


def write_pki(
    out: Path,
    *,
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    client_name: str = "tlsecho client",
    client_uris: tuple[str, ...] = (),
    key_type: KeyType = "ecdsa",
    rsa_bits: int = 2048,
    days: int = 365,
    bad: bool = False,
    force: bool = False,
    now: dt.datetime | None = None,
) -> Pki:
    """Make a CA and, signed by it, a server and a client certificate (with
    ``client_uris`` as URI SANs: SPIFFE IDs).

    Files: ``ca.crt``/``ca.key``, ``server.crt``/``server.key``,
    ``client.crt``/``client.key``; with ``bad``, also the kinds in
    :data:`BAD_KINDS` as ``<kind>.crt``/``<kind>.key``.

    Raises:
        CertificateError: a file exists (without ``force``) or cannot be written.
        ConfigError: bad parameters.
    """
    _check(hosts, days)
    if not client_name.strip():
        raise ConfigError(f"{setting('client_name')} must not be empty")
    for uri in client_uris:
        if ":" not in uri or any(c.isspace() for c in uri):
            raise ConfigError(f"{setting('client_uris')}: not a URI: {uri!r}")
    stems = ["ca", "server", "client", *(k.name for k in BAD_KINDS if bad)]
    _prepare(out, [f"{s}.{ext}" for s in stems for ext in ("crt", "key")], force)
    start = _start(now)
    end = start + dt.timedelta(days=days)
    ca_key = _new_key(key_type, rsa_bits)
    ca_name = _name("tlsecho test CA")
    # The CA outlives what it signs by a day, so leaves never outlive it.
    issuer = Issuer.new_ca(ca_key, ca_name, not_before=start, not_after=end + dt.timedelta(days=1))

    def leaf(
        cn: str,
        *,
        usage: Literal["server", "client"] = "server",
        names: tuple[str, ...] | list[str] = hosts,
        signer: Issuer | None = issuer,
        nb: dt.datetime = start,
        na: dt.datetime = end,
        uris: tuple[str, ...] = (),
    ) -> tuple[bytes, bytes]:
        key = _new_key(key_type, rsa_bits)
        how = {
            "not_before": nb,
            "not_after": na,
            "names": general_names(names if usage == "server" else (), uris),
            "usage": usage,
        }
        cert = (
            signer.issue(key, _name(cn), **how)
            if signer
            else Issuer.self_signed(key, _name(cn), **how)
        )
        return pem(cert), key_pem(key)

    ca_pair = _save(out, "ca", pem(issuer.cert), key_pem(ca_key), force)
    server = _save(out, "server", *leaf(hosts[0]), force)
    client = _save(out, "client", *leaf(client_name, usage="client", uris=client_uris), force)
    bad_pairs: dict[str, CertPair] = {}
    if bad:
        day = dt.timedelta(days=1)
        other_key = _new_key(key_type, rsa_bits)
        other = Issuer.new_ca(
            other_key, _name("tlsecho unknown CA"), not_before=start, not_after=end
        )
        made = {
            "expired": leaf(hosts[0], nb=start - 30 * day, na=start - day),
            "not-yet-valid": leaf(hosts[0], nb=start + 30 * day, na=end + 30 * day),
            "wrong-host": leaf("wrong.host.invalid", names=["wrong.host.invalid"]),
            "self-signed": leaf(hosts[0], signer=None),
            "unknown-ca": leaf(hosts[0], signer=other),
            "client-expired": leaf(
                client_name, usage="client", nb=start - 30 * day, na=start - day
            ),
            "client-unknown-ca": leaf(client_name, usage="client", signer=other),
        }
        for kind, (cert_bytes, key_bytes) in made.items():
            bad_pairs[kind] = _save(out, kind, cert_bytes, key_bytes, force)
    return Pki(ca_pair, server, client, bad_pairs)


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


@dataclass(frozen=True)
class CertificateInfo:
    """What tlsecho tells about a certificate: the server's chain (probe) and a
    client's certificate (the server's log) alike."""

    subject: str
    issuer: str
    serial: str
    """Hexadecimal."""
    sans: list[str]
    not_before: str
    not_after: str
    days_left: int
    key: str
    """Key type and size, e.g. ``ECDSA P-256`` or ``RSA 2048``."""
    signature_algorithm: str
    sha256: str
    """SHA-256 fingerprint of the DER certificate, ``AB:CD:...``."""


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate, as the logs write it (``AB:CD:...``):
    the hash of its bytes, so nothing is parsed twice."""
    return hashlib.sha256(der).digest().hex(":").upper()


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


def describe_certificate(der: bytes, now: dt.datetime | None = None) -> CertificateInfo:
    """Describe a DER certificate; ``days_left`` counts from ``now`` (default: now)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n.value) for n in san]
    except x509.ExtensionNotFound:
        sans = []
    now = now or dt.datetime.now(dt.UTC)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        sans=sans,
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        days_left=(cert.not_valid_after_utc - now).days,
        key=_key_description(cert),
        signature_algorithm=cert.signature_algorithm_oid._name,  # e.g. ecdsa-with-SHA256
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )
