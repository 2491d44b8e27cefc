"""The lab's certificate kinds beyond ``tlsecho cert --bad``: chains with
intermediates, weak signatures and keys, wrong usages, big ones.

Each is signed (through intermediates where it needs them) by the CA of a
:class:`~tlsecho.certs.Pki`, so a client trusts one CA for the whole lab
(``tlsecho lab``). The ``.crt`` file is what the server presents: the leaf
and the intermediates it sends (none for ``incomplete-chain``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsecho.certs import DEFAULT_HOSTS, CertPair, Pki
from tlsecho.errors import CertificateError

__all__ = ["LAB_KINDS", "LabKind", "write_lab_certs"]

_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class LabKind:
    """One of the lab's certificates."""

    name: str
    what: str
    result: str
    """What a correct client does: ``reject`` or ``echo`` (accept)."""
    detail: str
    weak: bool = False
    """The server must lower OpenSSL's security level to load it (SHA-1, RSA-1024)."""


LAB_KINDS: tuple[LabKind, ...] = (
    LabKind(
        "incomplete-chain",
        "leaf signed by an intermediate the server does not send",
        "reject",
        "unable to get local issuer certificate",
    ),
    LabKind(
        "sha1",
        "leaf signed with SHA-1",
        "reject",
        "CA signature digest algorithm too weak",
        weak=True,
    ),
    LabKind(
        "rsa-1024",
        "leaf with a 1024-bit RSA key",
        "reject",
        "EE certificate key too weak",
        weak=True,
    ),
    LabKind(
        "no-server-eku",
        "leaf whose extended key usage is clientAuth only",
        "reject",
        "unsuitable certificate purpose",
    ),
    LabKind(
        "ca-leaf",
        "a CA certificate (CA:TRUE, keyCertSign only) as the server's",
        "reject",
        "unsuitable certificate purpose",
    ),
    LabKind(
        "name-constraints",
        "leaf for the hosts under an intermediate permitted only .permitted.invalid",
        "reject",
        "permitted subtree violation",
    ),
    LabKind("1000-sans", "leaf with 1000 subject alternative names: accept it", "echo", "intact"),
    LabKind(
        "deep-chain",
        "leaf under 8 intermediates (10 certificates with the root): accept it",
        "echo",
        "intact",
    ),
)


def _load(pair: CertPair) -> tuple[x509.Certificate, _Key]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return cert, key


def _names(hosts: tuple[str, ...] | list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in hosts:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


class _Issuer:
    """Certificates signed by one key (the CA's, or an intermediate's)."""

    def __init__(self, cert: x509.Certificate, key: _Key, start: dt.datetime) -> None:
        self.cert, self.key, self.start = cert, key, start

    def sign(
        self,
        cn: str,
        key: _Key,
        *,
        ca: bool = False,
        names: list[x509.GeneralName] | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        key_usage: str = "leaf",
        extra: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.start + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_key_usage(key_usage, key), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if extra is not None:
            builder = extra(builder)
        return builder.sign(self.key, hashes.SHA256())

    def intermediate(
        self,
        cn: str,
        extra: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] | None = None,
    ) -> _Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        return _Issuer(self.sign(cn, key, ca=True, key_usage="ca", extra=extra), key, self.start)


def _key_usage(kind: str, key: _Key) -> x509.KeyUsage:
    is_ca = kind in ("ca", "ca-only")
    return x509.KeyUsage(
        digital_signature=kind != "ca-only",
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey) and not is_ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=kind == "ca",
        encipher_only=False,
        decipher_only=False,
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _sha1_leaf(ca: CertPair, hosts: tuple[str, ...], out: Path) -> bytes:
    """A SHA-1-signed leaf, by the openssl command (cryptography no longer
    signs with SHA-1)."""
    san = ",".join(
        f"IP:{h}" if ":" in h or h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts
    )
    with tempfile.TemporaryDirectory() as tmp:
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
        )
        csr = Path(tmp) / "leaf.csr"
        run = [
            ["openssl", "req", "-new", "-key", str(out / "sha1.key"), "-subj", "/CN=localhost"],
            ["-out", str(csr)],
        ]
        # A random serial: -CAcreateserial would leave ca.srl beside the CA.
        sign = [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert)),
            *("-CAkey", str(ca.key), "-set_serial", str(x509.random_serial_number())),
            *("-sha1", "-days", "365", "-extfile", str(ext), "-out", str(Path(tmp) / "leaf.crt")),
        ]
        for cmd in ([*run[0], *run[1]], sign):
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            except OSError as exc:
                raise CertificateError(f"cannot run openssl: {exc.strerror or exc}") from None
            except subprocess.CalledProcessError as exc:
                said = exc.stderr.decode(errors="replace").strip().splitlines()
                raise CertificateError(
                    "openssl could not make the SHA-1 certificate: "
                    + (said[-1] if said else f"exit {exc.returncode}")
                ) from None
        return (Path(tmp) / "leaf.crt").read_bytes()


def write_lab_certs(
    out: Path, pki: Pki, hosts: tuple[str, ...] = DEFAULT_HOSTS
) -> dict[str, CertPair]:
    """Write the :data:`LAB_KINDS` into ``out`` (``<kind>.crt``/``.key``),
    signed under ``pki``'s CA; by kind."""
    ca_cert, ca_key = _load(pki.ca)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    root = _Issuer(ca_cert, ca_key, start)
    names = _names(hosts)
    server_eku = [ExtendedKeyUsageOID.SERVER_AUTH]
    made: dict[str, tuple[bytes, bytes]] = {}

    def leaf(
        issuer: _Issuer, key: _Key | None = None, **kw: object
    ) -> tuple[x509.Certificate, _Key]:
        k = key or ec.generate_private_key(ec.SECP256R1())
        kw.setdefault("names", names)
        kw.setdefault("eku", server_eku)
        return issuer.sign(hosts[0], k, **kw), k  # type: ignore[arg-type]

    inter = root.intermediate("tlsecho lab intermediate")
    cert, key = leaf(inter)
    made["incomplete-chain"] = (_pem(cert), _key_pem(key))  # the intermediate left out
    sha1_key = ec.generate_private_key(ec.SECP256R1())
    (out / "sha1.key").write_bytes(_key_pem(sha1_key))
    made["sha1"] = (_sha1_leaf(pki.ca, hosts, out), _key_pem(sha1_key))
    cert, key = leaf(root, rsa.generate_private_key(public_exponent=65537, key_size=1024))
    made["rsa-1024"] = (_pem(cert), _key_pem(key))
    cert, key = leaf(root, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    made["no-server-eku"] = (_pem(cert), _key_pem(key))
    cert, key = leaf(root, ca=True, key_usage="ca-only", eku=None)
    made["ca-leaf"] = (_pem(cert), _key_pem(key))
    constrained = root.intermediate(
        "tlsecho lab constrained intermediate",
        extra=lambda b: b.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName("permitted.invalid"),
                    x509.IPAddress(ipaddress.ip_network("192.0.2.0/24")),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        ),
    )
    cert, key = leaf(constrained)
    made["name-constraints"] = (_pem(cert, constrained.cert), _key_pem(key))
    many = names + [x509.DNSName(f"san{i}.lab.invalid") for i in range(1000 - len(names))]
    cert, key = leaf(root, names=many)
    made["1000-sans"] = (_pem(cert), _key_pem(key))
    chain = [root]
    for i in range(8):
        chain.append(chain[-1].intermediate(f"tlsecho lab intermediate {i + 1}"))
    cert, key = leaf(chain[-1])
    made["deep-chain"] = (_pem(cert, *(c.cert for c in reversed(chain[1:]))), _key_pem(key))
    pairs = {}
    for kind, (cert_pem, key_pem) in made.items():
        pair = CertPair(out / f"{kind}.crt", out / f"{kind}.key")
        pair.key.write_bytes(key_pem)
        pair.key.chmod(0o600)
        pair.cert.write_bytes(cert_pem)
        pairs[kind] = pair
    return pairs
