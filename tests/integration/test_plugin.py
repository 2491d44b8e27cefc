"""The pytest plugin, used the way a user's test suite would (pytester), and
``tlsecho badssl`` as a command."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TLSECHO

USER_TESTS = """
import socket
import ssl

import pytest


def echo(ctx, server, data, name="localhost"):
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(100):
                out += chunk
            return out


def test_readme_example(tlsecho_server):
    ctx = ssl.create_default_context(cafile=str(tlsecho_server.ca_path))
    assert echo(ctx, tlsecho_server, b"hello\\0world") == b"hello"


def test_client_context(tlsecho_server):
    assert echo(tlsecho_server.client_context(), tlsecho_server, b"ctx\\0") == b"ctx"


def test_factory_line_mode(tlsecho_server_factory):
    server = tlsecho_server_factory(mode="line")
    ctx = server.client_context()
    with socket.create_connection(server.address, timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"one\\ntwo\\n")
            got = b""
            while len(got) < 8:
                got += s.recv(100)
            assert got == b"one\\ntwo\\n"


def test_factory_mtls(tlsecho_server_factory):
    server = tlsecho_server_factory(client_auth="required")
    assert echo(server.client_context(client_cert=True), server, b"mtls\\0") == b"mtls"
    with pytest.raises(ssl.SSLError):
        echo(server.client_context(), server, b"no cert\\0")


def test_factory_versions_and_alpn(tlsecho_server_factory):
    server = tlsecho_server_factory(max_version="1.2", alpn=("echo",))
    ctx = server.client_context()
    ctx.set_alpn_protocols(["echo"])
    with socket.create_connection(server.address, timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"
            assert s.selected_alpn_protocol() == "echo"


def test_factory_bad_certificate(tlsecho_server_factory):
    server = tlsecho_server_factory(bad="expired")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        echo(server.client_context(), server, b"x\\0")


def test_bad_endpoints(tlsecho_bad_endpoints):
    assert set(tlsecho_bad_endpoints) >= {"expired", "wrong-host", "self-signed",
        "unknown-ca", "not-yet-valid", "client-cert-required", "tls1.2-only",
        "tls1.3-only", "alpn-required"}
    wrong = tlsecho_bad_endpoints["wrong-host"]
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        echo(wrong.client_context(), wrong, b"x\\0")
    only12 = tlsecho_bad_endpoints["tls1.2-only"]
    ctx = only12.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        echo(ctx, only12, b"x\\0")
    assert only12.wait_outcome("handshake-failed") == 1
"""


def test_plugin_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=7)


def test_badssl_command(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*TLSECHO, "badssl", "--port", "0", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports = {}
    for line in proc.stdout:
        m = re.match(r"\s+(\d+)\s+(\S+)\s+(.*)", line)
        if m:
            ports[m.group(2)] = int(m.group(1))
        if line.startswith("client certificate:"):
            break
    try:
        assert len(ports) == 9
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        for name, error in [
            ("expired", "certificate has expired"),
            ("wrong-host", "Hostname mismatch"),
            ("self-signed", "self-signed certificate"),
            ("unknown-ca", "unable to get local issuer certificate"),
        ]:
            with (
                socket.create_connection(("127.0.0.1", ports[name]), timeout=10) as raw,
                pytest.raises(ssl.SSLCertVerificationError, match=error),
            ):
                ctx.wrap_socket(raw, server_hostname="localhost")
        raw = socket.create_connection(("127.0.0.1", ports["tls1.3-only"]), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.3"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    # No start-up or shutdown line per server around the table; one summary;
    # each connection's line names the endpoint it hit.
    assert "starting up" not in err and "served" not in err, err
    assert re.search(r"done peer=.* end=handshake-failed .*endpoint=expired$", err, re.M), err
    assert re.fullmatch(r"served \d+ connections? on 9 endpoints \(.*\)\n", rest), rest


GOLDEN_TESTS = """
import os
import socket
import ssl
import subprocess
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def python_client(server):
    ctx = server.client_context()
    if os.environ.get("CLIENT_ALPN"):
        ctx.set_alpn_protocols(os.environ["CLIENT_ALPN"].split(","))
    with socket.create_connection(server.address) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ping")
            s.recv(4)


def test_python_client(tlsecho_client_hello, tlsecho_golden):
    hello = tlsecho_client_hello(python_client)
    tlsecho_golden(hello, GOLDEN / "python.json")


def test_curl(tlsecho_client_hello, tlsecho_golden):
    def run(server):
        subprocess.run(
            ["curl", "-s", "-m", "5", "--cacert", str(server.ca_path), "-o", os.devnull,
             f"https://localhost:{server.port}/"],
            check=False,
        )

    hello = tlsecho_client_hello(run)
    assert hello.server_name == "localhost"
    tlsecho_golden(hello, GOLDEN / "curl.json")
"""


@pytest.mark.slow
def test_golden_client_hellos(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_golden=GOLDEN_TESTS)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    first.assert_outcomes(failed=2)
    first.stdout.fnmatch_lines(["*no golden ClientHello at *python.json*--tlsecho-update-golden*"])
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--tlsecho-update-golden")
    golden = json.loads((pytester.path / "golden" / "python.json").read_text())
    assert golden["cipher_suites"][0] == "TLS_AES_256_GCM_SHA384" and golden["alpn"] == []
    assert "GREASE" not in json.dumps(golden)
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    again.assert_outcomes(passed=2)  # a second run of the same clients: the same hellos
    # The client changes (it offers ALPN now): the diff says what appeared.
    monkeypatch.setenv("CLIENT_ALPN", "h2,http/1.1")
    changed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    changed.assert_outcomes(passed=1, failed=1)
    changed.stdout.fnmatch_lines(
        [
            "*the ClientHello differs from *python.json*",
            "*alpn: +h2, +http/1.1*",
            "*extensions: +application_layer_protocol_negotiation*",
        ]
    )
