"""Every TLS knob, checked by what an independent peer sees: openssl s_client,
openssl verify, socat, and Python's ssl module."""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import (
    TLSECHO,
    ServerProcess,
    fingerprint,
    s_client,
    served_certificate,
    start_server,
    stop_cleanly,
)
from tlsecho.pki.certs import Pki, write_pair

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def run_server() -> Iterator[StartServer]:
    """Start servers with arbitrary arguments; stop them all afterwards."""
    started: list[ServerProcess] = []

    def start(*args: str, host: str = "127.0.0.1") -> ServerProcess:
        # JSON logs: tests read each connection's record, not its text line.
        srv = start_server("--log-format", "json", *args, host=host)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        stop_cleanly(srv)


def pki_args(pki: Pki) -> list[str]:
    return ["--cert", str(pki.server.cert), "--key", str(pki.server.key)]


#: ``tlsecho send`` to 127.0.0.1, quiet unless ``-v`` is among the arguments.
send = functools.partial(helpers.send, quiet=True)


def socat(port: int, ca: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    addr = f"OPENSSL:127.0.0.1:{port},cafile={ca},commonname=localhost"
    return subprocess.run(
        ["socat", "-t", "5", "-", addr], input=data, capture_output=True, timeout=30, check=False
    )


# -- framing modes --------------------------------------------------------------
def test_raw_mode_with_socat(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "raw")
    data = b"raw \x00 bytes\nwith NULs\x00 and newlines\r\n" * 1000
    p = socat(srv.port, ca_pki.ca.cert, data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    srv.wait_for_record(bytes_in=len(data), bytes_out=len(data), discarded=0, outcome="eof")


def test_raw_mode_with_send(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "raw")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "raw", "a\x01b", "c")
    assert p.returncode == 0, p.stderr
    stdin = bytes(range(256)) * 2000  # NULs included: raw carries anything
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "raw", "-", stdin=stdin)
    assert p.returncode == 0, p.stderr
    assert p.stdout == stdin


def test_line_mode_with_socat(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line", "-v")
    p = socat(srv.port, ca_pki.ca.cert, b"one\ntwo\r\n\nthree")
    assert p.returncode == 0, p.stderr
    # Complete lines come back as sent; the unterminated "three" cannot.
    assert p.stdout == b"one\ntwo\r\n\n"
    srv.wait_for_record(bytes_in=15, bytes_out=10, discarded=5, outcome="eof")


def test_line_mode_line_too_long(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line", "--max-line", "10")
    p = socat(srv.port, ca_pki.ca.cert, b"short\n" + b"x" * 20 + b"\nnever\n")
    assert p.stdout == b"short\n"
    srv.wait_for(r": line longer than 10 bytes: closing connection$")
    srv.wait_for_record(bytes_out=6, outcome="framing-error")
    # Everyone else is still served.
    assert socat(srv.port, ca_pki.ca.cert, b"ok\n").stdout == b"ok\n"


def test_line_mode_with_send(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--mode", "line")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--mode", "line", "first\nsec", "ond")
    assert p.returncode == 0, p.stderr
    srv.wait_for_record(
        bytes_in=13, bytes_out=13, outcome="eof"
    )  # "second" got its newline from send


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


# -- --listen ----------------------------------------------------------------------
def test_listen_twice(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    line = srv.wait_for(r"listening on ")[0]
    addrs = line.split("listening on ")[1].split(", ")
    assert len(addrs) == 2
    assert addrs[0].startswith("127.0.0.1:")
    assert addrs[1].startswith("[::1]:")
    for addr in addrs:
        host, port = addr.rsplit(":", 1)
        p = s_client(int(port), "-quiet", "-CAfile", str(ca_pki.ca.cert), host=host)
        assert p.stdout == b"hello"


def test_listen_bad_value(ca_pki: Pki) -> None:
    cmd = [*TLSECHO, "serve", *pki_args(ca_pki), "--listen", "::1:80"]
    p = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    assert p.returncode == 2  # a usage error
    assert "write IPv6 as [ADDRESS]:PORT" in p.stderr.decode() or "HOST:PORT" in p.stderr.decode()


# -- reload -------------------------------------------------------------------------
def served_fingerprint(port: int) -> str:
    return fingerprint(served_certificate(s_client(port, data=b"\x00").stdout))


def python_client(port: int, ca: Path) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def echo_once(s: ssl.SSLSocket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        got += s.recv(100)
    return got


def test_sighup_reload(ca_pki: Pki, tmp_path: Path) -> None:
    first = write_pair(tmp_path)
    srv = start_server("--cert", str(first.cert), "--key", str(first.key))
    try:
        old_fp = fingerprint(first.cert.read_bytes())
        assert served_fingerprint(srv.port) == old_fp
        before = python_client(srv.port, first.cert)
        assert echo_once(before, b"before") == b"before"
        second = write_pair(tmp_path, force=True)
        new_fp = fingerprint(second.cert.read_bytes())
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for(rf"reloaded certificate .* sha256={new_fp}$")
        # The open connection continues; new ones see the new certificate.
        assert echo_once(before, b" still here") == b" still here"
        assert served_fingerprint(srv.port) == new_fp
        # A broken file changes nothing.
        second.cert.write_text("garbage\n")
        srv.proc.send_signal(signal.SIGHUP)
        line = srv.wait_for(r"reload failed")[0]
        assert "keeping the current certificates" in line
        assert "is not a PEM certificate" in line
        assert served_fingerprint(srv.port) == new_fp
        assert echo_once(before, b"!") == b"!"
        before.sendall(b"\x00")
        before.close()
    finally:
        assert srv.stop() == 0
    assert "Traceback" not in "\n".join(srv.lines())


def test_reload_interval(ca_pki: Pki, tmp_path: Path) -> None:
    first = write_pair(tmp_path)
    srv = start_server(
        "--cert", str(first.cert), "--key", str(first.key), "--reload-interval", "0.2"
    )
    try:
        # "listening on" comes after the watcher took its first look.
        second = write_pair(tmp_path, force=True)
        new_fp = fingerprint(second.cert.read_bytes())
        srv.wait_for(rf"reloaded certificate .* sha256={new_fp}$")
        assert served_fingerprint(srv.port) == new_fp
    finally:
        assert srv.stop() == 0


# -- PROXY protocol -------------------------------------------------------------------
V1 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x1b"  # PROXY, TCP4, 12 + 15 bytes
    + bytes([192, 0, 2, 20, 198, 51, 100, 1])
    + (40000).to_bytes(2, "big")
    + (443).to_bytes(2, "big")
    + b"\x02\x00\x0cexample.test"  # TLV authority
)
V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


def proxied_echo(port: int, ca: Path, header: bytes, drip: bool = False) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if drip:
        for b in header:
            raw.sendall(bytes([b]))
            time.sleep(0.005)
    else:
        raw.sendall(header)
    ctx = ssl.create_default_context(cafile=str(ca))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"proxied\x00")
        out = b""
        while chunk := s.recv(100):
            out += chunk
        return out


@pytest.mark.parametrize("mode", ["v1", "any"])
def test_proxy_v1(run_server: StartServer, ca_pki: Pki, mode: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", mode)
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1) == b"proxied"
    rec = srv.wait_for_record(outcome="terminated")[0]
    assert rec["logger"] == "echo_192.0.2.10_56324"
    assert rec["peer"] == "192.0.2.10:56324"
    assert rec["via"].startswith("127.0.0.1:")


@pytest.mark.parametrize("mode", ["v2", "any"])
def test_proxy_v2_with_tlvs(run_server: StartServer, ca_pki: Pki, mode: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", mode, "-v")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2) == b"proxied"
    srv.wait_for(r"PROXY v2 PROXY TCP4 from 192.0.2.20:40000 via .* tlvs=authority=example.test")
    srv.wait_for_record(peer=r"192\.0\.2\.20:40000", via=r"127\.0\.0\.1:\d+")


def test_proxy_v2_local_uses_the_real_peer(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "v2")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2_LOCAL) == b"proxied"
    rec = srv.wait_for_record(outcome="terminated")[0]
    assert rec["via"] is None
    assert rec["peer"].startswith("127.0.0.1:")


def test_proxy_header_dripped_byte_by_byte(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "any")
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1, drip=True) == b"proxied"
    assert proxied_echo(srv.port, ca_pki.ca.cert, V2, drip=True) == b"proxied"


@pytest.mark.parametrize(
    ("junk", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a PROXY header"),
        (b"PROXY TCP4 " + b"9" * 120 + b"\r\n", "longer than 107 bytes"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "bad port"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04", "cannot hold"),
    ],
)
def test_proxy_malformed_is_one_line(
    run_server: StartServer, ca_pki: Pki, junk: bytes, reason: str
) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "any")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        raw.sendall(junk)
        raw.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(100) == b""  # closed, nothing sent back
    rec = srv.wait_for_record(outcome="proxy-error")[0]
    assert reason in rec["reason"]
    assert proxied_echo(srv.port, ca_pki.ca.cert, V1) == b"proxied"


def test_proxy_header_then_reset(run_server: StartServer, ca_pki: Pki) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", "v1")
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    raw.sendall(V1[:20])
    time.sleep(0.1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()
    srv.wait_for_record(
        outcome="proxy-error", reason="reset by peer|closed before the end of the PROXY header"
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_header(run_server: StartServer, ca_pki: Pki, version: str) -> None:
    srv = run_server(*pki_args(ca_pki), "--proxy-protocol", version, "-v")
    p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--proxy-header", version)
    assert p.returncode == 0, p.stderr
    srv.wait_for(rf"PROXY v{version[1]} PROXY TCP4 from 127.0.0.1:\d+ via 127.0.0.1:\d+")


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
