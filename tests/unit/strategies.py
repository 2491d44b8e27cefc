"""Hypothesis strategies shared by the sans-IO tests."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st


@st.composite
def split(draw: st.DrawFn, data: bytes, max_cuts: int = 20) -> list[bytes]:
    """``data`` cut at arbitrary points into non-empty chunks."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_cuts)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- client certificates nobody expected -----------------------------------------
# Keys are made once (an RSA key per example would dominate the run); the
# certificate around them is what varies.
_KEYS: dict[str, Any] = {}


def _key(kind: str) -> Any:
    if kind not in _KEYS:
        if kind == "rsa":
            _KEYS[kind] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind in ("ecdsa", "ca"):
            _KEYS[kind] = ec.generate_private_key(ec.SECP256R1())
        else:
            _KEYS[kind] = ed25519.Ed25519PrivateKey.generate()
    return _KEYS[kind]


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_unicode_label = st.text(
    alphabet=st.characters(min_codepoint=0xA1, max_codepoint=0x2FFF, categories=["Ll", "Lo"]),
    min_size=1,
    max_size=10,
)


def _a_label(text: str) -> str | None:
    try:
        return idna.encode(text).decode()
    except idna.IDNAError:
        return None


_dns = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.builds(lambda lbl: "*." + lbl + ".example", _label),
    _unicode_label.map(_a_label).filter(lambda a: a is not None).map(lambda a: f"{a}.test"),
)
# At most 16 characters: a CN may have 64 bytes of UTF-8 (RFC 5280's ub-common-name).
_attr_value = st.text(min_size=1, max_size=16).filter(lambda v: v.strip() != "")
_name_attr = st.one_of(
    st.builds(lambda v: x509.NameAttribute(NameOID.COMMON_NAME, v), _attr_value),
    st.builds(lambda v: x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v), _attr_value),
    st.builds(lambda v: x509.NameAttribute(NameOID.ORGANIZATION_NAME, v), _attr_value),
    st.builds(lambda v: x509.NameAttribute(NameOID.SERIAL_NUMBER, v), _label),
    st.builds(lambda v: x509.NameAttribute(NameOID.EMAIL_ADDRESS, v + "@x.test"), _label),
)
#: Names: empty, one attribute, several (with repeats: two CNs, two OUs).
names = st.lists(_name_attr, max_size=5).map(x509.Name)
_oid = st.builds(
    lambda a, b: x509.ObjectIdentifier(f"1.3.6.1.4.1.{a}.{b}"),
    st.integers(1, 2**31),
    st.integers(0, 1000),
)
general_names = st.one_of(
    _dns.map(x509.DNSName),
    st.builds(lambda lbl: x509.RFC822Name(f"{lbl}@example.test"), _label),
    st.builds(lambda lbl: x509.UniformResourceIdentifier(f"spiffe://{lbl}.test/ns/{lbl}"), _label),
    st.ip_addresses().map(x509.IPAddress),
    _oid.map(x509.RegisteredID),
    names.map(x509.DirectoryName),
    # otherName: an OID and any DER value (a UTF8String here, e.g. a UPN).
    st.builds(
        lambda oid, v: x509.OtherName(oid, b"\x0c" + bytes([len(v)]) + v),
        _oid,
        st.binary(max_size=100),
    ),
)


CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hypothesis CA")])


def ca_certificate() -> bytes:
    """The PEM CA that signs :func:`client_certificates` (for real handshakes)."""
    key = _key("ca")
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(CA_NAME)
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(der: bytes) -> bytes:
    """The PEM private key of a certificate :func:`client_certificates` made."""
    public = x509.load_der_x509_certificate(der).public_key()
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for key in _KEYS.values():
        if key.public_key().public_bytes(*raw) == public.public_bytes(*raw):
            pem: bytes = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return pem
    raise LookupError("not a key of ours")


@st.composite
def client_certificates(draw: st.DrawFn, max_sans: int = 20) -> bytes:
    """A DER client certificate: no SAN or any mix of GeneralName types,
    empty or odd subjects, an unknown critical extension, RSA, ECDSA or
    Ed25519, signed by :func:`ca_certificate`'s key and valid today."""
    key = _key(draw(st.sampled_from(["rsa", "ecdsa", "ed25519"])))
    issuer_key = _key("ca")
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(draw(names))
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(draw(st.integers(1, 2**159 - 1)))
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    sans = draw(st.lists(general_names, max_size=max_sans, unique_by=repr))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if draw(st.booleans()):
        unknown = x509.UnrecognizedExtension(draw(_oid), draw(st.binary(max_size=50)))
        builder = builder.add_extension(unknown, critical=True)
    cert = builder.sign(issuer_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)
