"""``tlsecho probe`` against tlsecho and against openssl s_server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import TLSECHO, fingerprint, start_server
from tlsecho.pki.certs import Pki


def probe(target: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*TLSECHO, "probe", target, *args], capture_output=True, timeout=60, check=False
    )


def probe_json(target: str, *args: str) -> tuple[int, dict[str, Any]]:
    p = probe(target, "--json", *args)
    return p.returncode, json.loads(p.stdout)


@pytest.mark.parametrize(("tickets", "resumed"), [([], True), (["--session-tickets", "0"], False)])
def test_probe_tlsecho(ca_pki: Pki, tickets: list[str], resumed: bool) -> None:
    srv = start_server(
        "--cert",
        str(ca_pki.server.cert),
        "--key",
        str(ca_pki.server.key),
        "--alpn",
        "h2,echo",
        "--log-format",
        "json",
        *tickets,
    )
    try:
        rc, r = probe_json(
            f"localhost:{srv.port}", "--cafile", str(ca_pki.ca.cert), "--alpn", "echo"
        )
        assert rc == 0
        assert r["tls_version"] == "TLSv1.3"
        assert r["alpn"] == "echo"
        assert r["server_name"] == "localhost"
        assert r["verified"] is True
        assert r["resumed"] is resumed
        chain = r["chain"]
        assert isinstance(chain, list)
        assert chain[0]["sha256"] == fingerprint(ca_pki.server.cert.read_bytes())
        assert chain[0]["key"] == "ECDSA P-256"
        assert chain[0]["sans"] == ["localhost", "127.0.0.1", "::1"]
        assert 360 <= chain[0]["days_left"] <= 365
        srv.wait_for_record(sni="localhost", alpn="echo", outcome="eof")
    finally:
        assert srv.stop() == 0


def test_probe_tls12_and_table(ca_pki: Pki) -> None:
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key))
    try:
        p = probe(f"127.0.0.1:{srv.port}", "--cafile", str(ca_pki.ca.cert), "--max-version", "1.2")
        assert p.returncode == 0, p.stderr
        out = p.stdout.decode()
        assert "TLSv1.2" in out
        assert "ECDHE-ECDSA-AES128-GCM-SHA256" in out
        assert "server certificate" in out
        assert "ECDSA P-256" in out
    finally:
        assert srv.stop() == 0


def test_probe_verification_failure(ca_pki: Pki) -> None:
    bad = ca_pki.bad["expired"]
    srv = start_server("--cert", str(bad.cert), "--key", str(bad.key))
    try:
        target = f"localhost:{srv.port}"
        p = probe(target, "--json", "--cafile", str(ca_pki.ca.cert))
        assert p.returncode == 1
        r = json.loads(p.stdout)
        assert r["verified"] is False
        assert "certificate has expired" in r["verify_error"]
        assert r["chain"][0]["days_left"] < 0  # read from an unverified handshake
        assert "error: certificate verify failed: certificate has expired" in p.stderr.decode()
        rc, _ = probe_json(target, "--cafile", str(ca_pki.ca.cert), "--no-fail")
        assert rc == 0
        # The old name of --no-fail still works, and says it is the old name.
        old = probe(target, "--json", "--cafile", str(ca_pki.ca.cert), "--insecure")
        assert old.returncode == 0
        assert "--insecure is now --no-fail" in old.stderr.decode()
    finally:
        assert srv.stop() == 0


@pytest.fixture
def s_server(ca_pki: Pki, request: pytest.FixtureRequest) -> Iterator[int]:
    """openssl s_server: a TLS server nobody here wrote (extra options as
    the test's parameter)."""
    extra: list[str] = getattr(request, "param", [])
    proc = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            str(ca_pki.server.cert),
            "-key",
            str(ca_pki.server.key),
            "-alpn",
            "h2",
            *extra,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode().strip()
        if line.startswith("ACCEPT "):
            port = int(line.rsplit(":", 1)[1])
            break
    yield port
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        assert f is not None
        f.close()


def test_probe_openssl_s_server(s_server: int, ca_pki: Pki) -> None:
    rc, r = probe_json(f"localhost:{s_server}", "--cafile", str(ca_pki.ca.cert), "--alpn", "h2")
    assert rc == 0
    assert r["tls_version"] == "TLSv1.3"
    assert r["alpn"] == "h2"
    assert r["resumed"] is True
    assert r["chain"][0]["sha256"] == fingerprint(ca_pki.server.cert.read_bytes())


@pytest.mark.parametrize(
    ("s_server", "version", "group", "retry", "ja3s"),
    [
        # Python's client key-shares x25519 only: P-384 takes a HelloRetryRequest.
        (["-groups", "P-384"], "TLSv1.3", "secp384r1", True, "771,4866,43-51"),
        (["-groups", "X25519"], "TLSv1.3", "x25519", False, "771,4866,43-51"),
        # TLS 1.2: the group is in the ServerKeyExchange; extensions from the ServerHello.
        (["-tls1_2", "-groups", "P-256"], "TLSv1.2", "secp256r1", False, r"771,49196,[\d-]+"),
    ],
    indirect=["s_server"],
    ids=["hrr-p384", "x25519", "tls12-p256"],
)
def test_probe_reads_the_group_off_the_wire(
    s_server: int, ca_pki: Pki, version: str, group: str, retry: bool, ja3s: str
) -> None:
    import hashlib
    import re

    rc, r = probe_json(f"localhost:{s_server}", "--cafile", str(ca_pki.ca.cert))
    assert rc == 0
    assert (r["tls_version"], r["group"], r["hello_retry"]) == (version, group, retry)
    assert re.fullmatch(ja3s, r["ja3s"]), r["ja3s"]
    assert r["ja3s_hash"] == hashlib.md5(r["ja3s"].encode()).hexdigest()
    table = probe(f"localhost:{s_server}", "--cafile", str(ca_pki.ca.cert)).stdout.decode()
    assert group in table and ("HelloRetryRequest" in table) == retry


def test_probe_refused() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p = probe(f"127.0.0.1:{s.getsockname()[1]}")
    assert p.returncode == 1
    assert "connection refused" in p.stderr.decode()
    assert "Traceback" not in p.stderr.decode()
