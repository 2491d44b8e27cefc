"""Client identity over real mTLS: the log line says who the client is
(SANs, SPKI pin), and --allow-* admits or refuses it right after the
handshake (end=identity-refused, close_notify, nothing echoed)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import TLSECHO, ServerProcess, send, start_server, stop_cleanly
from tests.unit.strategies import ca_certificate, client_certificates, key_pem
from tlsecho.config import ServerConfig
from tlsecho.pki.certs import Pki, write_pki
from tlsecho.pytest_plugin import RunningServer
from tlsecho.server.identity import client_identity

SPIFFE = "spiffe://example.org/ns/prod/sa/api"


@pytest.fixture(scope="module")
def spiffe_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("spiffe"), client_name="api", client_uris=(SPIFFE,))


@pytest.fixture
def serve(spiffe_pki: Pki) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for srv in started:
        stop_cleanly(srv)


def start(spiffe_pki: Pki, started: list[ServerProcess], *args: str) -> ServerProcess:
    srv = start_server(
        *("--cert", str(spiffe_pki.server.cert), "--key", str(spiffe_pki.server.key)),
        *("--client-ca", str(spiffe_pki.ca.cert), "--log-format", "json", *args),
    )
    started.append(srv)
    return srv


def client(pki: Pki, port: int, *extra: str) -> subprocess.CompletedProcess[bytes]:
    args = ["--cafile", str(pki.ca.cert), "--cert", str(pki.client.cert)]
    return send(port, *args, "--key", str(pki.client.key), *extra)


def test_spiffe_trust_domain_admits(spiffe_pki: Pki, serve: list[ServerProcess]) -> None:
    srv = start(spiffe_pki, serve, "--allow-uri", "spiffe://example.org")
    p = client(spiffe_pki, srv.port)
    assert p.returncode == 0, p.stderr
    srv.wait_for_record(outcome="terminated", client_cert="CN=api,O=tlsecho")
    line = srv.wait_for("client certificate subject=")[0]
    pin = client_identity(ssl.PEM_cert_to_DER_cert(spiffe_pki.client.cert.read_text())).spki_pin
    assert f"sans={SPIFFE}" in line and f"spki={pin}" in line


@pytest.mark.parametrize(
    "allow",
    [["--allow-cn", "someone-else"], ["--allow-uri", "spiffe://other.org"], ["--allow-ou", "x"]],
)
def test_no_match_is_refused_after_the_handshake(
    spiffe_pki: Pki, serve: list[ServerProcess], allow: list[str]
) -> None:
    srv = start(spiffe_pki, serve, *allow)
    p = client(spiffe_pki, srv.port)
    assert p.returncode == 1
    assert "server closed early after 0 of" in p.stderr.decode()
    # It names the two refusals a server makes after the handshake.
    assert (
        "does the server admit this client certificate's identity (--allow-*)?" in p.stderr.decode()
    )
    (rec,) = srv.wait_for_record(outcome="identity-refused", bytes_out=0)
    assert rec["reason"] == f"identity not allowed: CN=api,O=tlsecho uri={SPIFFE}"
    assert rec["tls_version"] == "TLSv1.3"  # the handshake itself succeeded


def test_no_certificate_with_optional_auth_is_refused(
    spiffe_pki: Pki, serve: list[ServerProcess]
) -> None:
    srv = start(spiffe_pki, serve, "--client-auth", "optional", "--allow-cn", "api")
    p = send(srv.port, "--cafile", str(spiffe_pki.ca.cert))
    assert p.returncode == 1
    srv.wait_for_record(outcome="identity-refused", reason="no client certificate")


def test_spki_pin_with_openssl_s_client(spiffe_pki: Pki, serve: list[ServerProcess]) -> None:
    der = ssl.PEM_cert_to_DER_cert(spiffe_pki.client.cert.read_text())
    srv = start(spiffe_pki, serve, "--allow-spki-pin", client_identity(der).spki_pin)
    cmd = ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{srv.port}"]
    cmd += ["-CAfile", str(spiffe_pki.ca.cert), "-cert", str(spiffe_pki.client.cert)]
    cmd += ["-key", str(spiffe_pki.client.key)]
    p = subprocess.run(cmd, input=b"pinned\x00", capture_output=True, timeout=20, check=False)
    assert p.stdout == b"pinned", p.stderr
    srv.wait_for_record(outcome="terminated")


def test_hello_mode_reports_the_identity(spiffe_pki: Pki, serve: list[ServerProcess]) -> None:
    srv = start(spiffe_pki, serve, "--mode", "hello")
    p = client(spiffe_pki, srv.port, "--mode", "hello", "--json")
    assert p.returncode == 0, p.stderr
    cert = json.loads(p.stdout)["negotiated"]["client_certificate"]
    assert cert["uris"] == [SPIFFE] and cert["common_names"] == ["api"]
    assert cert["verified"] is True and len(cert["spki_pin"]) == 44


def test_allow_without_client_certificates_is_a_usage_error(tmp_path: Path) -> None:
    p = subprocess.run(
        [*TLSECHO, "serve", "--port", "0", "--allow-cn", "api"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert p.returncode == 2
    assert "--allow-cn checks client certificates" in p.stderr.decode()


def test_cert_client_uri(tmp_path: Path) -> None:
    p = subprocess.run(
        [*TLSECHO, "cert", "--ca", "--out", str(tmp_path), "--client-uri", SPIFFE],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    der = ssl.PEM_cert_to_DER_cert((tmp_path / "client.crt").read_text())
    assert client_identity(der).uris == (SPIFFE,)
    bad = subprocess.run(
        [*TLSECHO, "cert", "--out", str(tmp_path / "x"), "--client-uri", SPIFFE],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and b"--client-uri goes with --ca" in bad.stderr


@pytest.fixture(scope="module")
def plain_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """``tlsecho cert --ca``: its client certificate has no subjectAltName."""
    return write_pki(tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("engine", ["sslsocket", "membio"])
def test_a_certificate_without_san_is_judged_never_echoed(
    plain_pki: Pki, serve: list[ServerProcess], engine: str
) -> None:
    """Issue 16: with cryptography 51 the identity of a certificate with no
    subjectAltName raised, after the handshake, and the allowlist never ran:
    the client was echoed. It must be refused (or, failing that, end as an
    internal error): never an echo."""
    srv = start(plain_pki, serve, "--engine", engine, "--allow-cn", "somebody else")
    p = client(plain_pki, srv.port)
    assert p.returncode == 1 and p.stdout == b""
    (rec,) = srv.wait_for_record(outcome="identity-refused", bytes_out=0)
    assert rec["reason"] == "identity not allowed: CN=tlsecho client,O=tlsecho"
    admitted = start(plain_pki, serve, "--engine", engine, "--allow-cn", "tlsecho client")
    ok = client(plain_pki, admitted.port)
    assert ok.returncode == 0, ok.stderr
    admitted.wait_for_record(outcome="terminated", client_cert="CN=tlsecho client,O=tlsecho")
    assert not any("Traceback" in line for line in srv.lines() + admitted.lines())


@pytest.fixture(scope="module")
def odd_cert_servers(
    plain_pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RunningServer]]:
    """Two in-process servers that trust the hypothesis CA: one answers
    --mode hello, one allows nobody (--allow-cn nobody)."""
    ca = tmp_path_factory.mktemp("hyp-ca") / "ca.crt"
    ca.write_bytes(ca_certificate())
    base = ServerConfig(
        host="127.0.0.1",
        port=0,
        cert=plain_pki.server.cert,
        key=plain_pki.server.key,
        client_auth="required",
        client_ca=ca,
    )
    servers = {
        "hello": RunningServer(dataclasses.replace(base, mode="hello"), plain_pki).start(),
        "allow": RunningServer(dataclasses.replace(base, allow_cn=("nobody",)), plain_pki).start(),
    }
    yield servers
    for srv in servers.values():
        srv.stop()


def _exchange(srv: RunningServer, ca: Path, pem: Path, data: bytes) -> bytes | str:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(pem)
    got = b""
    try:
        with ctx.wrap_socket(
            socket.create_connection(srv.address, timeout=10), server_hostname="localhost"
        ) as tls:
            tls.sendall(data)
            while chunk := tls.recv(65536):
                got += chunk
    except (ssl.SSLError, ConnectionError) as exc:
        return got or f"refused: {exc}"
    return got


@given(der=client_certificates(max_sans=5))
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_unexpected_client_certificates_over_real_tls(
    der: bytes, odd_cert_servers: dict[str, RunningServer], plain_pki: Pki, tmp_path: Path
) -> None:
    """A handful of the unit suite's odd certificates in real handshakes:
    OpenSSL refuses some (an unknown critical extension); the rest are
    reported by --mode hello and refused by --allow-cn, never echoed and
    never an internal error."""
    pem = tmp_path / f"{hashlib.sha256(der).hexdigest()[:16]}.pem"
    pem.write_bytes(ssl.DER_cert_to_PEM_cert(der).encode() + key_pem(der))
    answer = _exchange(odd_cert_servers["hello"], plain_pki.ca.cert, pem, b"")
    if isinstance(answer, bytes):
        doc = json.loads(answer)["negotiated"]["client_certificate"]
        assert doc["sha256"] == client_identity(der).sha256
    refused = _exchange(odd_cert_servers["allow"], plain_pki.ca.cert, pem, b"secret\x00")
    assert refused == b"" or isinstance(refused, str)
    for srv in odd_cert_servers.values():
        assert "internal-error" not in srv.outcomes
