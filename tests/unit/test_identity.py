"""Client identities and the --allow-* policy, on certificates that
``write_pki`` makes (SPIFFE IDs included)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import random
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.strategies import client_certificates
from tlsecho.pki.certs import write_pki
from tlsecho.server.answer import _client_certificate
from tlsecho.server.identity import (
    CertificateUnreadable,
    ClientIdentity,
    Policy,
    client_identity,
    spki_der,
)

SPIFFE = "spiffe://example.org/ns/prod/sa/api"


@pytest.fixture(scope="module")
def who(tmp_path_factory: pytest.TempPathFactory) -> ClientIdentity:
    pki = write_pki(tmp_path_factory.mktemp("id"), client_name="api", client_uris=(SPIFFE,))
    return client_identity(ssl.PEM_cert_to_DER_cert(pki.client.cert.read_text()))


def test_identity_fields(who: ClientIdentity, tmp_path: Path) -> None:
    assert who.common_names == ("api",) and who.uris == (SPIFFE,)
    assert who.subject.startswith("CN=api") and "tlsecho test CA" in who.issuer
    assert len(base64.b64decode(who.spki_pin)) == 32
    assert who.as_dict()["uris"] == [SPIFFE]


def test_spki_pin_is_the_sha256_of_the_public_key(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    cert = x509.load_pem_x509_certificate(pki.client.cert.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    want = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert client_identity(cert.public_bytes(serialization.Encoding.DER)).spki_pin == want


@pytest.mark.parametrize(
    ("policy", "admitted"),
    [
        (Policy(), True),  # no --allow-*: every verified client
        (Policy(allow_cn=("api",)), True),
        (Policy(allow_cn=("other",)), False),
        (Policy(allow_ou=("ops",)), False),
        (Policy(allow_dns=("api.example.org",)), False),
        (Policy(allow_uri=(SPIFFE,)), True),
        (Policy(allow_uri=("spiffe://example.org",)), True),  # the trust domain
        (Policy(allow_uri=("spiffe://example.org/",)), True),
        (Policy(allow_uri=("spiffe://example.org/ns/dev",)), False),  # a path: exact only
        (Policy(allow_uri=("spiffe://example.org.evil",)), False),
        (Policy(allow_uri=("spiffe://example",)), False),
        (Policy(allow_cn=("other",), allow_uri=("spiffe://example.org",)), True),  # any match
    ],
)
def test_policy(who: ClientIdentity, policy: Policy, admitted: bool) -> None:
    refusal = policy.admits(who)
    assert (refusal is None) == admitted
    if refusal:
        assert refusal.startswith("identity not allowed: CN=api") and SPIFFE in refusal


def test_policy_pins_and_no_certificate(who: ClientIdentity) -> None:
    assert Policy(allow_spki_pin=(who.spki_pin,)).admits(who) is None
    assert Policy(allow_spki_pin=("AAAA",)).admits(who) is not None
    assert Policy(allow_cn=("api",)).admits(None) == "no client certificate"
    assert Policy().admits(None) is None


class _PeerSocket:
    """What the hello and tlsbin reports ask of a connection's socket."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self.der


def _check_identity(der: bytes) -> ClientIdentity:
    """The invariants every certificate keeps: an identity, never an exception."""
    who = client_identity(der)
    json.dumps(who.as_dict())
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert who.spki_pin == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert who.sha256 == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    # Every --allow-* check gives a verdict: None (admitted) or why not.
    nobody = "nobody at all \u00e9"
    for field in ("allow_cn", "allow_ou", "allow_dns", "allow_uri", "allow_spki_pin"):
        verdict = Policy(**{field: (nobody,)}).admits(who)
        assert isinstance(verdict, str) and verdict.startswith("identity not allowed")
    assert Policy(allow_spki_pin=(who.spki_pin,)).admits(who) is None
    for cn in who.common_names:
        assert Policy(allow_cn=(cn,)).admits(who) is None
    for dns in who.dns:
        assert Policy(allow_dns=(dns,)).admits(who) is None
    for uri in who.uris:
        assert Policy(allow_uri=(uri,)).admits(who) is None
    # --mode hello's answer and tlsbin's JSON carry it.
    doc = _client_certificate(_PeerSocket(der))  # type: ignore[arg-type]
    assert doc is not None and doc["sha256"] == who.sha256 and doc["verified"] is True
    json.dumps(doc)
    return who


@given(der=client_certificates())
@settings(max_examples=200, deadline=None)
def test_any_client_certificate_has_an_identity_and_a_verdict(der: bytes) -> None:
    _check_identity(der)


def test_thousands_of_sans_and_no_san_at_all() -> None:
    rng = random.Random(16)
    sans: list[x509.GeneralName] = [x509.DNSName(f"h{i}.example.test") for i in range(3000)]
    sans += [x509.IPAddress(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(500)]
    sans += [x509.UniformResourceIdentifier(f"spiffe://t.test/{i}") for i in range(500)]
    who = _check_identity(_certificate(sans))
    assert len(who.dns) == 3000 and len(who.ips) == 500 and len(who.uris) == 500
    bare = _check_identity(_certificate(None))
    assert (bare.dns, bare.ips, bare.uris) == ((), (), ())


def _certificate(sans: list[x509.GeneralName] | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@given(der=st.binary(max_size=300))
@example(der=b"\x30\x02\x30\x00")  # an empty tbsCertificate: it raised IndexError
def test_bytes_that_are_no_certificate_are_a_documented_error(der: bytes) -> None:
    with pytest.raises(CertificateUnreadable):
        spki_der(der)
    with contextlib.suppress(CertificateUnreadable):
        client_identity(der)
