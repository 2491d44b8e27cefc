"""TLS policy (versions, suites, ALPN, key logs, tickets), SNI and the
key-exchange groups, checked by what an independent peer sees."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    TLSECHO,
    StartServer,
    fingerprint,
    pki_args,
    quiet_send,
    s_client,
    served_certificate,
    start_server,
)
from tlsecho.pki.certs import Pki, write_pair

send = quiet_send


# -- TLS policy -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("server_args", "client_version", "ok"),
    [
        (["--tls-profile", "modern"], "-tls1_2", False),
        (["--tls-profile", "modern"], "-tls1_3", True),
        (["--min-version", "1.3"], "-tls1_2", False),
        (["--max-version", "1.2"], "-tls1_3", False),
        (["--max-version", "1.2"], "-tls1_2", True),
        ([], "-tls1_1", False),
    ],
)
def test_versions(
    run_server: StartServer, ca_pki: Pki, server_args: list[str], client_version: str, ok: bool
) -> None:
    srv = run_server(*pki_args(ca_pki), *server_args)
    args = [client_version, "-quiet", "-CAfile", str(ca_pki.ca.cert)]
    if client_version == "-tls1_1":
        args += ["-cipher", "DEFAULT@SECLEVEL=0"]
    p = s_client(srv.port, *args)
    assert (p.stdout == b"hello") is ok, p.stderr
    if not ok:
        srv.wait_for_record(
            outcome="handshake-failed", reason="(unsupported protocol|no protocols available).*"
        )


def test_refused_handshake_gets_a_fin_right_after_the_alert(
    run_server: StartServer, ca_pki: Pki
) -> None:
    """After refusing a handshake the server half-closes at once (it then
    lingers, reading, so the client's unread bytes cannot reset the alert
    away); it does not hold the client until the linger time runs out."""
    srv = run_server(*pki_args(ca_pki), "--min-version", "1.3")
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False) as s:
        with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"):
            s.do_handshake()
        started = time.monotonic()
        assert socket.socket.recv(s, 100) == b""  # the FIN
        assert time.monotonic() - started < 0.5  # the linger lasts 1 s
    srv.wait_for_record(outcome="handshake-failed")


def test_intermediate_refuses_cbc_suites(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki))
    p = s_client(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256", "-quiet")
    assert p.stdout != b"hello"
    srv.wait_for_record(outcome="handshake-failed", reason="no shared cipher")


def test_ciphers(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305")
    p = s_client(srv.port, "-tls1_2", "-CAfile", str(ca_pki.ca.cert))
    assert b"Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in p.stdout
    srv.wait_for_record(cipher="ECDHE-ECDSA-CHACHA20-POLY1305")


def test_bad_ciphers_is_one_line(ca_pki: Pki) -> None:
    cmd = [*TLSECHO, "serve", "--port", "0", *pki_args(ca_pki), "--ciphers", "NOPE-NOTHING"]
    p = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    assert p.returncode == 2  # a usage error
    assert p.stderr.decode().splitlines()[-1] == (
        "tlsecho serve: error: --ciphers 'NOPE-NOTHING': no cipher matches"
    )


def test_alpn(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--alpn", "h2,http/1.1")
    p = s_client(srv.port, "-alpn", "http/1.1,h2", "-CAfile", str(ca_pki.ca.cert))
    assert b"ALPN protocol: h2" in p.stdout  # the server's preference
    srv.wait_for_record(alpn="h2", outcome="terminated")
    p = s_client(srv.port, "-alpn", "foo", "-CAfile", str(ca_pki.ca.cert))
    assert b"No ALPN negotiated" in p.stdout
    srv.wait_for_record(alpn=None, outcome="terminated")


def test_alpn_required(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--alpn", "echo", "--alpn-required")
    p = s_client(srv.port, "-alpn", "other", "-quiet", "-CAfile", str(ca_pki.ca.cert))
    assert p.stdout == b""
    srv.wait_for_record(alpn=None, bytes_in=0, bytes_out=0, outcome="alpn-refused")
    p = s_client(srv.port, "-alpn", "echo", "-quiet", "-CAfile", str(ca_pki.ca.cert))
    assert p.stdout == b"hello"
    ok = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--alpn", "echo", "-v")
    assert ok.returncode == 0, ok.stderr
    assert "alpn=echo" in ok.stderr.decode()
    refused = send(srv.port, "--cafile", str(ca_pki.ca.cert))
    assert refused.returncode == 1
    assert "does the server require --alpn?" in refused.stderr.decode()


def test_keylog_matches_what_s_client_logs(
    run_server: StartServer, ca_pki: Pki, tmp_path: Path
) -> None:
    server_log, client_log = tmp_path / "server.keys", tmp_path / "client.keys"
    srv = run_server(*pki_args(ca_pki), "--keylog", str(server_log))
    p = s_client(srv.port, "-keylogfile", str(client_log), "-CAfile", str(ca_pki.ca.cert))
    assert p.returncode == 0
    srv.wait_for_record(outcome="terminated")
    server_lines = {ln for ln in server_log.read_text().splitlines() if not ln.startswith("#")}
    client_lines = {ln for ln in client_log.read_text().splitlines() if not ln.startswith("#")}
    assert any(ln.startswith("SERVER_TRAFFIC_SECRET_0 ") for ln in server_lines)
    assert server_lines == client_lines


def test_sslkeylogfile_is_honoured(ca_pki: Pki, tmp_path: Path) -> None:
    keys = tmp_path / "env.keys"
    srv = start_server(*pki_args(ca_pki), "--log-format", "json", env={"SSLKEYLOGFILE": str(keys)})
    try:
        p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--keylog", str(tmp_path / "c.keys"))
        assert p.returncode == 0, p.stderr
        srv.wait_for_record(outcome="terminated")
    finally:
        assert srv.stop() == 0
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keys.read_text()
    assert keys.read_text().splitlines()[-1] in (tmp_path / "c.keys").read_text()


@pytest.mark.parametrize(("tickets", "reused"), [([], True), (["--session-tickets", "0"], False)])
def test_session_tickets(
    run_server: StartServer, ca_pki: Pki, tmp_path: Path, tickets: list[str], reused: bool
) -> None:
    srv = run_server(*pki_args(ca_pki), *tickets)
    sess = tmp_path / "sess.pem"
    first = s_client(srv.port, "-sess_out", str(sess), "-CAfile", str(ca_pki.ca.cert))
    assert first.returncode == 0
    second = s_client(srv.port, "-sess_in", str(sess), "-CAfile", str(ca_pki.ca.cert))
    assert (b"Reused, TLSv1.3" in second.stdout) is reused, second.stdout


@pytest.mark.parametrize(("tickets", "count"), [([], 1), (["--session-tickets", "2"], 2)])
def test_session_tickets_per_handshake(
    run_server: StartServer, ca_pki: Pki, tickets: list[str], count: int
) -> None:
    srv = run_server(*pki_args(ca_pki), *tickets)
    p = s_client(srv.port, "-msg", "-CAfile", str(ca_pki.ca.cert), data=b"x\x00")
    received = [ln for ln in p.stdout.decode("latin-1").splitlines() if ln.startswith("<<<")]
    assert sum("NewSessionTicket" in ln for ln in received) == count, received


# -- SNI ---------------------------------------------------------------------------
def test_sni_chooses_the_certificate(run_server: StartServer, ca_pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "wild").mkdir()
    api = write_pair(tmp_path / "api", hosts=["api.example.test"])
    wild = write_pair(tmp_path / "wild", hosts=["*.wild.test"])
    srv = run_server(
        *pki_args(ca_pki),
        "--sni",
        f"api.example.test={api.cert}:{api.key}",
        "--sni",
        f"*.wild.test={wild.cert}:{wild.key}",
    )
    expect = {
        "api.example.test": api.cert,
        "API.Example.Test": api.cert,
        "a.wild.test": wild.cert,
        "a.b.wild.test": ca_pki.server.cert,  # a wildcard covers one label only
        "other.test": ca_pki.server.cert,
    }
    for name, cert in expect.items():
        p = s_client(srv.port, "-servername", name)
        assert fingerprint(served_certificate(p.stdout)) == fingerprint(cert.read_bytes()), name
        srv.wait_for_record(sni=re.escape(name.lower()))
    p = s_client(srv.port, "-noservername")
    assert fingerprint(served_certificate(p.stdout)) == fingerprint(ca_pki.server.cert.read_bytes())
    srv.wait_for_record(sni=None)
    ok = send(srv.port, "--cafile", str(api.cert), "--servername", "api.example.test")
    assert ok.returncode == 0, ok.stderr


# -- key-exchange groups -------------------------------------------------------------
@pytest.mark.parametrize(
    ("group", "ok"),
    [("X25519", True), ("P-256", True), ("P-384", True), ("X448", False), ("P-521", False)],
)
def test_key_exchange_groups(run_server: StartServer, ca_pki: Pki, group: str, ok: bool) -> None:
    """Mozilla's groups only: the tlsecho command restricts them through
    OPENSSL_CONF, which Python 3.11 offers no other way to do."""
    srv = run_server(*pki_args(ca_pki))
    p = s_client(srv.port, "-groups", group, "-quiet", "-CAfile", str(ca_pki.ca.cert))
    assert (p.stdout == b"hello") is ok, p.stderr


@pytest.mark.parametrize(("group", "ok"), [("X25519", True), ("X448", False)])
def test_groups_restricted_when_openssl_loaded_first(
    ca_pki: Pki, group: str, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSL reads its configuration once, when _ssl or _hashlib loads: a
    process that imported hashlib before tlsecho's entry point (a
    sitecustomize, a coverage hook) still gets Mozilla's groups only."""
    monkeypatch.delenv("OPENSSL_CONF", raising=False)
    code = "import hashlib, sys; from tlsecho._launch import main; sys.exit(main())"
    srv = start_server(*pki_args(ca_pki), launcher=(sys.executable, "-c", code))
    try:
        p = s_client(srv.port, "-groups", group, "-quiet", "-CAfile", str(ca_pki.ca.cert))
        assert (p.stdout == b"hello") is ok, p.stderr
    finally:
        assert srv.stop() == 0
