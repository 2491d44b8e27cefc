"""Client identities and the --allow-* policy, on certificates that
``write_pki`` makes (SPIFFE IDs included)."""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlsecho.certs import write_pki
from tlsecho.identity import ClientIdentity, Policy, client_identity

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
