"""The one issuer (tlsecho.pki.issuer): what each usage puts in a
certificate, and chains that link by name and key identifier."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsecho.errors import ConfigError
from tlsecho.pki.issuer import Issuer, general_names

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
VALID = {"not_before": NOW, "not_after": NOW + dt.timedelta(days=30)}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def test_a_chain_links_by_name_and_key_identifier() -> None:
    root = Issuer.new_ca(_key(), _name("root"), **VALID)
    inter = root.intermediate(_name("inter"), **VALID)
    leaf = inter.issue(_key(), _name("leaf"), names=general_names(["localhost", "::1"]), **VALID)
    for child, parent in ((leaf, inter.cert), (inter.cert, root.cert)):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
        aki = _ext(child, x509.AuthorityKeyIdentifier)
        ski = _ext(parent, x509.SubjectKeyIdentifier)
        assert isinstance(aki, x509.AuthorityKeyIdentifier) and isinstance(
            ski, x509.SubjectKeyIdentifier
        )
        assert aki.key_identifier == ski.digest
    assert root.cert.issuer == root.cert.subject
    san = _ext(leaf, x509.SubjectAlternativeName)
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


@pytest.mark.parametrize(
    ("usage", "ca", "cert_sign", "crl_sign", "signature", "eku"),
    [
        ("server", False, False, False, True, [ExtendedKeyUsageOID.SERVER_AUTH]),
        ("client", False, False, False, True, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        ("ca", True, True, True, True, None),
        ("ca-only", True, True, False, False, None),  # the lab's ca-leaf
    ],
)
def test_what_each_usage_puts_in(
    usage: str, ca: bool, cert_sign: bool, crl_sign: bool, signature: bool, eku: object
) -> None:
    root = Issuer.new_ca(_key(), _name("root"), **VALID)
    cert = root.issue(_key(), _name(usage), usage=usage, **VALID)
    basic = _ext(cert, x509.BasicConstraints)
    assert isinstance(basic, x509.BasicConstraints) and basic.ca is ca
    ku = _ext(cert, x509.KeyUsage)
    assert isinstance(ku, x509.KeyUsage)
    assert (ku.key_cert_sign, ku.crl_sign, ku.digital_signature) == (cert_sign, crl_sign, signature)
    got = _ext(cert, x509.ExtendedKeyUsage)
    assert (list(got) if isinstance(got, x509.ExtendedKeyUsage) else None) == eku


def test_an_explicit_eku_wins_and_a_bad_host_is_refused() -> None:
    root = Issuer.new_ca(_key(), _name("root"), **VALID)
    cert = root.issue(_key(), _name("x"), eku=[ExtendedKeyUsageOID.CLIENT_AUTH], **VALID)
    got = _ext(cert, x509.ExtendedKeyUsage)
    assert isinstance(got, x509.ExtendedKeyUsage)
    assert list(got) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(ConfigError, match="invalid host name"):
        general_names(["two words"])
