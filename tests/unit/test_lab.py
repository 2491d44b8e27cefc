"""The lab's catalog, manifest and certificates, without a network."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsecho.config import ServerConfig
from tlsecho.lab.endpoints import catalog, lab_configs, manifest, render, write_lab_pki
from tlsecho.wire.faults import RECORD_FAULTS

RESULTS = {"echo", "reject", "alert", "error", "cut", "timeout"}


def test_the_catalog_is_whole_and_consistent() -> None:
    entries = catalog()
    names = [e.name for e in entries]
    assert len(names) == len(set(names)) == 36
    assert {e.result for e in entries} <= RESULTS
    assert {e.kind for e in entries} == {"certificate", "policy", "fault"}
    for e in entries:
        options = dict(e.options)
        faults = options.get("faults", ())
        needs_membio = any(f.name in RECORD_FAULTS for f in faults)
        assert (options.get("engine") == "membio") == needs_membio, e.name
    for kind in ("incomplete-chain", "sha1", "rsa-1024", "no-server-eku", "ca-leaf"):
        assert kind in names
    assert {"name-constraints", "1000-sans", "deep-chain", "tls1.2-only", "tls1.3-only"} <= set(
        names
    )


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_lab_certificates_are_what_they_say(tmp_path: Path) -> None:
    _, lab = write_lab_pki(tmp_path)
    leaf = {k: load_chain(p.cert) for k, p in lab.items()}
    assert len(leaf["incomplete-chain"]) == 1  # the intermediate left out
    issuer = leaf["incomplete-chain"][0].issuer.rfc4514_string()
    assert "intermediate" in issuer
    sha1 = leaf["sha1"][0].signature_hash_algorithm
    assert sha1 is not None and sha1.name == "sha1"
    key = leaf["rsa-1024"][0].public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024
    eku = leaf["no-server-eku"][0].extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = leaf["ca-leaf"][0].extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca
    nc_chain = leaf["name-constraints"]
    assert nc_chain[1].extensions.get_extension_for_class(x509.NameConstraints)
    sans = leaf["1000-sans"][0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert len(sans.value) == 1000
    assert len(leaf["deep-chain"]) == 9  # leaf + 8 intermediates; the root makes 10
    assert all(p.key.stat().st_mode & 0o777 == 0o600 for p in lab.values())


def test_a_relative_out_directory_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tlsecho lab --out lab`: the SHA-1 leaf's openssl ran in a temporary
    directory and could not find lab/ca.crt."""
    monkeypatch.chdir(tmp_path)
    _, lab = write_lab_pki(Path("lab"))
    sha1 = load_chain(tmp_path / lab["sha1"].cert)[0].signature_hash_algorithm
    assert sha1 is not None and sha1.name == "sha1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab"]  # nothing beside it
    assert not list((tmp_path / "lab").glob("*.srl"))  # no serial file left behind


def test_configs_manifest_and_table(tmp_path: Path) -> None:
    pki, lab = write_lab_pki(tmp_path)
    configs = lab_configs(pki, lab, ServerConfig(host="127.0.0.1"), first_port=20000)
    assert [c.port for _, c in configs] == list(range(20000, 20036))
    by_name = {e.name: c for e, c in configs}
    assert by_name["expired"].cert == pki.bad["expired"].cert
    assert by_name["sha1"].ciphers is not None and "@SECLEVEL=0" in by_name["sha1"].ciphers
    assert by_name["client-cert-required"].client_ca == pki.ca.cert
    assert by_name["corrupt"].engine == "membio"
    doc = manifest(pki, [(e, "127.0.0.1", c.port) for e, c in configs])
    first = doc["endpoints"][0]
    assert first == {
        "name": "ok",
        "kind": "certificate",
        "what": "a valid certificate for the hosts",
        "host": "127.0.0.1",
        "port": 20000,
        "sni": "localhost",
        "expect": {"result": "echo", "detail": "intact"},
        "expect_text": "echo: intact",
        "needs": {},
    }
    needs = {e["name"]: e["needs"] for e in doc["endpoints"] if e["needs"]}
    assert needs == {
        "client-cert-required": {"client_cert": True},
        "alpn-required": {"alpn": ["echo"]},
    }
    table = render(doc)
    assert "20011  sha1" in table and "(present client.crt)" in table
    assert "(offer ALPN echo)" in table and table.splitlines()[0].startswith("tlsecho lab: 36")


REASONS = {
    "expired",
    "not-yet-valid",
    "hostname",
    "untrusted",
    "weak-signature",
    "weak-key",
    "purpose",
    "name-constraints",
}


def test_every_reject_says_its_reason_and_whether_it_is_strict() -> None:
    """Issue 17: a program compares ``reason`` (not OpenSSL's words), and a
    ``strict: false`` promise names the policy some correct stacks relax."""
    from tlsecho.lab.endpoints import _expect

    for entry in catalog():
        expect = _expect(entry)
        if entry.result != "reject":
            assert set(expect) == {"result", "detail"}
            continue
        assert expect["reason"] in REASONS, entry.name
        assert isinstance(expect["strict"], bool)
        assert ("policy" in expect) == (not expect["strict"]), entry.name
