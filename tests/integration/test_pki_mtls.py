"""The PKI (cert --ca --bad, checked by openssl verify) and mTLS, by what
openssl s_client, send and Python's ssl see."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    TLSECHO,
    ServerProcess,
    StartServer,
    fingerprint,
    pki_args,
    quiet_send,
    s_client,
)
from tlsecho.pki.certs import Pki

send = quiet_send


# -- the PKI --------------------------------------------------------------------
def openssl_verify(ca: Path, cert: Path, *args: str) -> str:
    cmd = ["openssl", "verify", "-CAfile", str(ca), *args, str(cert)]
    p = subprocess.run(cmd, capture_output=True, check=False)
    return (p.stdout + p.stderr).decode()


def test_cert_ca_bad_cli(tmp_path: Path) -> None:
    p = subprocess.run(
        [*TLSECHO, "cert", "--ca", "--bad", "--out", str(tmp_path), "--client-name", "alice"],
        capture_output=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    for name in (
        "ca.crt",
        "server.crt",
        "client.crt",
        "expired.crt",
        "not-yet-valid.crt",
        "wrong-host.crt",
        "self-signed.crt",
        "unknown-ca.crt",
    ):
        assert name in out
        assert (tmp_path / name).is_file()
        assert (tmp_path / name.replace(".crt", ".key")).stat().st_mode & 0o777 == 0o600
    ca = tmp_path / "ca.crt"
    assert ": OK" in openssl_verify(ca, tmp_path / "server.crt", "-verify_hostname", "localhost")
    assert ": OK" in openssl_verify(ca, tmp_path / "client.crt", "-purpose", "sslclient")
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(tmp_path / "client.crt")],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "CN = alice" in subject
    assert "certificate has expired" in openssl_verify(ca, tmp_path / "expired.crt")
    assert "not yet valid" in openssl_verify(ca, tmp_path / "not-yet-valid.crt")
    assert "hostname mismatch" in openssl_verify(
        ca, tmp_path / "wrong-host.crt", "-verify_hostname", "localhost"
    )
    assert "self-signed certificate" in openssl_verify(ca, tmp_path / "self-signed.crt")
    assert "unable to get local issuer" in openssl_verify(ca, tmp_path / "unknown-ca.crt")
    assert (
        "--bad goes with --ca"
        in subprocess.run(
            [*TLSECHO, "cert", "--bad", "--out", str(tmp_path)], capture_output=True, check=False
        ).stderr.decode()
    )


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("expired", "certificate has expired"),
        ("not-yet-valid", "certificate is not yet valid"),
        ("wrong-host", "hostname mismatch"),
        ("self-signed", "self-signed certificate"),
        ("unknown-ca", "unable to get local issuer certificate"),
    ],
)
def test_bad_certificates_are_refused_by_send(
    run_server: StartServer, ca_pki: Pki, kind: str, error: str
) -> None:
    bad = ca_pki.bad[kind]
    srv = run_server("--cert", str(bad.cert), "--key", str(bad.key))
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--servername", "localhost")
    assert p.returncode == 1
    assert error in p.stderr.decode()
    srv.wait_for_record(outcome="handshake-failed")


# -- mTLS -------------------------------------------------------------------------
@pytest.fixture
def mtls_server(run_server: StartServer, ca_pki: Pki) -> ServerProcess:
    return run_server(*pki_args(ca_pki), "--client-ca", str(ca_pki.ca.cert))


def test_mtls_s_client_with_certificate(mtls_server: ServerProcess, ca_pki: Pki) -> None:
    p = s_client(
        mtls_server.port,
        "-quiet",
        "-CAfile",
        str(ca_pki.ca.cert),
        "-cert",
        str(ca_pki.client.cert),
        "-key",
        str(ca_pki.client.key),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello"
    line = mtls_server.wait_for(r"client certificate subject=")[0]
    assert "subject='CN=tlsecho client,O=tlsecho'" in line
    assert "issuer='CN=tlsecho test CA,O=tlsecho'" in line
    assert f"sha256={fingerprint(ca_pki.client.cert.read_bytes())}" in line
    serial = (
        subprocess.run(
            ["openssl", "x509", "-noout", "-serial", "-in", str(ca_pki.client.cert)],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
        .split("=")[1]
    )
    assert f"serial={serial.lower().lstrip('0')}" in line


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_mtls_s_client_without_certificate_is_refused(
    mtls_server: ServerProcess, ca_pki: Pki, version: str
) -> None:
    p = s_client(mtls_server.port, version, "-CAfile", str(ca_pki.ca.cert))
    assert b"hello" not in p.stdout.split(b"---")[-1]
    mtls_server.wait_for_record(
        outcome="handshake-failed", reason="peer did not return a certificate"
    )


@pytest.mark.parametrize(
    ("cert", "error"),
    [
        (None, "the server requires a client certificate"),
        ("client-unknown-ca", "not signed by a CA the server trusts"),
        ("client-expired", "it has expired"),
    ],
)
def test_mtls_send_errors(
    mtls_server: ServerProcess, ca_pki: Pki, cert: str | None, error: str
) -> None:
    args = ["--cafile", str(ca_pki.ca.cert)]
    if cert:
        args += ["--cert", str(ca_pki.bad[cert].cert), "--key", str(ca_pki.bad[cert].key)]
    p = send(mtls_server.port, *args)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert error in err
    assert err.count("\n") == 1
    mtls_server.wait_for_record(
        outcome="handshake-failed", reason="(peer did not|certificate verify).*"
    )


def test_mtls_send_with_certificate(mtls_server: ServerProcess, ca_pki: Pki) -> None:
    p = send(
        mtls_server.port,
        "--cafile",
        str(ca_pki.ca.cert),
        "--cert",
        str(ca_pki.client.cert),
        "--key",
        str(ca_pki.client.key),
    )
    assert p.returncode == 0, p.stderr


def test_mtls_optional(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(
        *pki_args(ca_pki), "--client-ca", str(ca_pki.ca.cert), "--client-auth", "optional"
    )
    p = s_client(srv.port, "-quiet", "-CAfile", str(ca_pki.ca.cert))
    assert p.stdout == b"hello"
    srv.wait_for(r": no client certificate$")
