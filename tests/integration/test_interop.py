"""Interop with TLS peers nobody here wrote: openssl s_client, socat, ncat as
clients of ``tlsecho serve``, and node's ``tls`` as a server for ``tlsecho send``."""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, send
from tlsecho.pki.certs import CertPair

pytestmark = pytest.mark.interop
PEERS = Path(__file__).parent.parent / "peers"


@pytest.fixture
def server(server_json: ServerProcess) -> ServerProcess:
    """In this module the server logs JSON: the checks read its records."""
    return server_json


def run(cmd: list[str], data: bytes, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client(server: ServerProcess, pki: CertPair, version: str) -> None:
    cmd = ["openssl", "s_client", version, "-quiet", "-verify_return_error"]
    cmd += ["-CAfile", str(pki.cert), "-verify_hostname", "localhost"]
    cmd += ["-connect", f"127.0.0.1:{server.port}"]
    p = run(cmd, b"hello\x00world")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello"
    (rec,) = server.wait_for_record(outcome="terminated")
    assert (rec["bytes_in"], rec["bytes_out"], rec["discarded"]) == (11, 5, 5)
    assert rec["tls_version"] == f"TLSv1.{version[-1]}"


def test_openssl_s_client_sees_close_notify(server: ServerProcess, pki: CertPair) -> None:
    cmd = ["openssl", "s_client", "-ign_eof", "-msg", "-CAfile", str(pki.cert)]
    cmd += ["-connect", f"127.0.0.1:{server.port}"]
    p = run(cmd, b"hello\x00")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode("latin-1")
    # "<<<" is what s_client received: the server's close_notify alert.
    received = [ln for ln in out.splitlines() if ln.startswith("<<<")]
    assert any("close_notify" in ln for ln in received), out
    assert "hello" in out


def test_socat_client(server: ServerProcess, pki: CertPair) -> None:
    cmd = ["socat", "-t", "5", "-", f"OPENSSL:127.0.0.1:{server.port},cafile={pki.cert}"]
    cmd[-1] += ",commonname=localhost"
    p = run(cmd, b"hello\x00world")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello"


def test_socat_large_message(server: ServerProcess, pki: CertPair) -> None:
    import os

    payload = os.urandom(2 << 20).replace(b"\x00", b"\xff")
    cmd = ["socat", "-t", "10", "-", f"OPENSSL:127.0.0.1:{server.port},cafile={pki.cert}"]
    cmd[-1] += ",commonname=localhost"
    p = run(cmd, payload + b"\x00", timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == payload


def test_ncat_client(server: ServerProcess, pki: CertPair) -> None:
    cmd = ["ncat", "--ssl", "--ssl-verify", "--ssl-trustfile", str(pki.cert)]
    cmd += ["localhost", str(server.port)]
    p = run(cmd, b"hello\x00world")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello"


@pytest.fixture
def node_server(pki: CertPair, request: pytest.FixtureRequest) -> Iterator[int]:
    mode = getattr(request, "param", "echo")
    proc = subprocess.Popen(
        ["node", str(PEERS / "node_echo_server.js"), str(pki.cert), str(pki.key), mode],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("listening "), line
    yield int(line.split()[1])
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def send_to(port: int, pki: CertPair, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``tlsecho send`` to localhost, trusting ``pki``."""
    return send(port, "--cafile", str(pki.cert), *args, host="localhost", timeout=30)


def test_send_to_node_server(node_server: int, pki: CertPair) -> None:
    p = send_to(node_server, pki)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    received = b"".join(
        ast.literal_eval(ln.split("received ", 1)[1])  # the logged repr of a chunk
        for ln in err.splitlines()
        if ln.startswith("echo_client: received ")
    )
    assert received == b"This is the message. It will be sent in parts."


@pytest.mark.parametrize(
    ("node_server", "message"),
    [
        ("corrupt", "echo mismatch at byte 5: sent 0x69, got 0x49"),
        ("truncate", "server closed early after 10 of 46 bytes"),
    ],
    indirect=["node_server"],
)
def test_send_detects_a_wrong_echo(node_server: int, pki: CertPair, message: str) -> None:
    p = send_to(node_server, pki, "-q")
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err == f"tlsecho send: error: {message}\n"
