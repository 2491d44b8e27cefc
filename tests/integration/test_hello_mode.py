"""``--mode hello``: the server answers every TLS client with one JSON
document (what its ClientHello offered, what was negotiated), then
close_notify; read with openssl s_client, socat, ncat, Python's ssl and
``tlsecho send --mode hello``."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import ServerProcess, send, start_server, stop_cleanly
from tlsecho.pki.certs import Pki


@pytest.fixture
def hello_server(ca_pki: Pki, loop_name: str) -> Iterator[ServerProcess]:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--mode", "hello", "--loop", loop_name, "--log-format", "json"),
        *("--client-ca", str(ca_pki.ca.cert), "--client-auth", "optional"),
    )
    yield srv
    stop_cleanly(srv)


def run(cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        cmd, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL
    )


def test_openssl_s_client_reads_what_it_offered(hello_server: ServerProcess, ca_pki: Pki) -> None:
    p = run(
        [
            *("openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{hello_server.port}"),
            *("-CAfile", str(ca_pki.ca.cert), "-servername", "localhost", "-tls1_3"),
            *("-ciphersuites", "TLS_AES_128_GCM_SHA256", "-groups", "P-256:X25519"),
        ]
    )
    answer = json.loads(p.stdout)
    hello, got = answer["client_hello"], answer["negotiated"]
    assert hello["cipher_suites"][0] == "TLS_AES_128_GCM_SHA256"
    assert hello["supported_groups"] == ["secp256r1", "x25519"]
    assert hello["key_share_groups"] == ["secp256r1"]
    assert hello["server_name"] == "localhost" and hello["ja4"].startswith("t13d")
    assert got["cipher"] == "TLS_AES_128_GCM_SHA256" and got["tls_version"] == "TLSv1.3"
    assert got["sni"] == "localhost" and got["client_certificate"] is None
    (rec,) = hello_server.wait_for_record(outcome="answered")
    # The answer is all that went out; the log line says so and carries the JA4.
    assert rec["bytes_out"] == len(p.stdout) and rec["ja4"] == hello["ja4"]


@pytest.mark.parametrize("tool", ["socat", "ncat"])
def test_socat_and_ncat(hello_server: ServerProcess, ca_pki: Pki, tool: str) -> None:
    if tool == "socat":
        cmd = ["socat", "-t", "5", "-", f"OPENSSL:127.0.0.1:{hello_server.port}"]
        cmd[-1] += f",cafile={ca_pki.ca.cert},commonname=localhost"
    else:
        cmd = ["ncat", "--ssl", "--ssl-trustfile", str(ca_pki.ca.cert)]
        cmd += ["localhost", str(hello_server.port)]
    p = run(cmd)
    answer = json.loads(p.stdout)
    assert answer["negotiated"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert answer["client_hello"]["cipher_suites"]


def test_client_certificate_and_resumption(hello_server: ServerProcess, ca_pki: Pki) -> None:
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.load_cert_chain(ca_pki.client.cert, ca_pki.client.key)

    def ask(session: ssl.SSLSession | None = None) -> tuple[dict[str, Any], ssl.SSLSession]:
        raw = socket.create_connection(("127.0.0.1", hello_server.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert s.session is not None
            return json.loads(data), s.session

    first, session = ask()
    cert = first["negotiated"]["client_certificate"]
    assert cert["verified"] and cert["subject"] == ca_pki_subject(ca_pki)
    assert first["negotiated"]["resumed"] is False
    second, _ = ask(session)
    assert second["negotiated"]["resumed"] is True
    assert second["client_hello"]["pre_shared_key"] is True  # it offered the ticket


def ca_pki_subject(ca_pki: Pki) -> str:
    from tlsecho.pki.certs import describe_certificate

    der = ssl.PEM_cert_to_DER_cert(ca_pki.client.cert.read_text())
    return describe_certificate(der).subject


def test_send_mode_hello(hello_server: ServerProcess, ca_pki: Pki) -> None:
    base = ["--cafile", str(ca_pki.ca.cert), "--mode", "hello", "--alpn", "h2,http/1.1"]
    p = send(hello_server.port, *base, "--json")
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert answer["client_hello"]["alpn"] == ["h2", "http/1.1"]
    assert answer["client_hello"]["ja4"][8:10] == "h2"
    table = send(hello_server.port, *base)
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert "what this client offered" in out and answer["client_hello"]["ja4"][:10] in out


def test_send_without_mode_hello_is_told_to_use_it(
    hello_server: ServerProcess, ca_pki: Pki
) -> None:
    p = send(hello_server.port, "--cafile", str(ca_pki.ca.cert), "hi")
    assert p.returncode == 1
    last = p.stderr.decode().strip().splitlines()[-1]
    assert last.endswith("(the server answered JSON: use --mode hello)"), last


def test_send_mode_hello_against_an_echo_server(server: ServerProcess, pki: Any) -> None:
    # An echo server answers nothing until it sees a NUL: a clear timeout,
    # then no traceback.
    p = send(server.port, "--cafile", str(pki.cert), "--mode", "hello", "--timeout", "1")
    assert p.returncode == 1
    assert p.stderr.decode().strip().splitlines()[-1].startswith("tlsecho send: error: timed out")


def test_bench_refuses_mode_hello(hello_server: ServerProcess) -> None:
    from tests.helpers import TLSECHO

    p = run([*TLSECHO, "bench", "--port", str(hello_server.port), "--mode", "hello"])
    assert p.returncode == 2 and b"invalid choice: 'hello'" in p.stderr


def test_hostile_clients_do_not_disturb_the_answers(
    hello_server: ServerProcess, ca_pki: Pki
) -> None:
    """Garbage, a ClientHello with a malformed extension, a flood after the
    handshake and a reset mid-answer; then a client still gets its answer,
    and the server logged each in one line, no traceback."""
    from tests.hostile.helpers import client_hello, odd_groups, reset

    port = hello_server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello, not tls")
        s.recv(100)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(odd_groups(client_hello()))
        s.recv(100)
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"x" * 1_000_000)  # discarded: hello mode echoes nothing
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        assert json.loads(answer)["negotiated"]["tls_version"] == "TLSv1.3"
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s2 = ctx.wrap_socket(raw, server_hostname="localhost")
    reset(s2)
    p = run(
        [
            *("openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}"),
            *("-CAfile", str(ca_pki.ca.cert), "-servername", "localhost"),
        ]
    )
    assert json.loads(p.stdout)["client_hello"]["ja4"]
    hello_server.wait_for_record(outcome="answered", count=2)
    assert hello_server.proc.poll() is None
    assert not any("Traceback" in line for line in hello_server.lines())
