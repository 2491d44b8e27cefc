"""Certificate generation: contents, file modes, overwrite rules, errors."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tlsecho.cli import main
from tlsecho.errors import CertificateError, ConfigError
from tlsecho.pki.certs import write_pair, write_pki


def test_default_pair_is_ecdsa_p256_with_sans(tmp_path: Path) -> None:
    pair = write_pair(tmp_path)
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 365
    # The key loads into OpenSSL with the certificate.
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(pair.cert, pair.key)


def test_key_file_mode_0600(tmp_path: Path) -> None:
    pair = write_pair(tmp_path)
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600


def test_rsa_bits_and_days(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, key_type="rsa", rsa_bits=3072, days=10, hosts=["example.test"])
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 10


def test_no_overwrite_without_force(tmp_path: Path) -> None:
    first = write_pair(tmp_path)
    before = first.cert.read_bytes()
    with pytest.raises(CertificateError, match="exists; pass force to overwrite it"):
        write_pair(tmp_path)
    assert first.cert.read_bytes() == before
    os.chmod(first.key, 0o644)
    again = write_pair(tmp_path, force=True)
    assert again.cert.read_bytes() != before
    assert stat.S_IMODE(again.key.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"days": 0}, "^days must be at least 1, not 0$"),
        ({"key_type": "rsa", "rsa_bits": 1024}, "^rsa_bits must be at least 2048"),
        ({"hosts": []}, "at least one host"),
        ({"hosts": ["bad host"]}, "invalid host"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        write_pair(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_cli_cert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cert", "--out", str(tmp_path), "--hosts", "a.test,10.0.0.1"]) == 0
    out = capsys.readouterr().out
    assert "tlsecho.crt" in out and "tlsecho.key" in out
    assert main(["cert", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err


def test_cli_cert_unwritable_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A missing directory is made, parents included.
    assert main(["cert", "--ca", "--out", str(tmp_path / "new" / "pki")]) == 0
    assert (tmp_path / "new" / "pki" / "ca.crt").is_file()
    capsys.readouterr()
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["cert", "--out", str(a_file)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert main(["cert", "--out", str(a_file / "below")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create" in err
    # /proc refuses new files even to root: a directory that exists but
    # cannot be written.
    assert main(["cert", "--out", "/proc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write /proc/tlsecho.key" in err


@pytest.mark.parametrize("name", ["\U0001f600" * 30, "é" * 40, "a" * 100])
def test_a_long_or_non_ascii_client_name_is_cut_to_64_bytes(tmp_path: Path, name: str) -> None:
    """cryptography 51 counts a common name's 64 in UTF-8 bytes: 30 emoji
    raised a ValueError (a traceback from ``tlsecho cert --client-name``)."""
    pki = write_pki(tmp_path, client_name=name)
    cert = x509.load_pem_x509_certificate(pki.client.cert.read_bytes())
    (cn,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert isinstance(cn.value, str) and name.startswith(cn.value)
    assert 60 < len(cn.value.encode()) <= 64
