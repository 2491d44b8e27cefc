"""``serve --groups``: the server's key-exchange groups, checked by what
clients see (our probe reads the HelloRetryRequest off the wire; openssl
s_client), and a group this OpenSSL lacks is a clear start-up error."""

from __future__ import annotations

import json
import os
import ssl
import subprocess

import pytest

from tests.helpers import TLSECHO, start_server, stop_cleanly
from tlsecho.pki.certs import Pki


def serve_groups(ca_pki: Pki, groups: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [*TLSECHO, "serve", "--port", "0", "--groups", groups]
    cmd += ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)]
    return subprocess.run(cmd, capture_output=True, timeout=30, check=False)


def probe(port: int, ca_pki: Pki) -> dict[str, object]:
    cmd = [*TLSECHO, "probe", f"localhost:{port}", "--cafile", str(ca_pki.ca.cert), "--json"]
    p = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    result: dict[str, object] = json.loads(p.stdout)
    return result


def test_p384_only_makes_an_x25519_client_retry(ca_pki: Pki) -> None:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--groups", "P-384", "--log-format", "json"),
    )
    try:
        srv.wait_for("key-exchange groups: P-384")
        r = probe(srv.port, ca_pki)
        assert (r["group"], r["hello_retry"]) == ("secp384r1", True)
        # A client with no group in common is refused in the handshake.
        cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-groups", "X25519"]
        p = subprocess.run(cmd, input=b"", capture_output=True, timeout=20, check=False)
        assert p.returncode != 0
        srv.wait_for_record(outcome="handshake-failed")
    finally:
        stop_cleanly(srv)


def test_the_default_groups_need_no_retry(ca_pki: Pki) -> None:
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key))
    try:
        r = probe(srv.port, ca_pki)
        assert (r["group"], r["hello_retry"]) == ("x25519", False)
    finally:
        stop_cleanly(srv)


def test_post_quantum_where_openssl_has_it(ca_pki: Pki) -> None:
    if ssl.OPENSSL_VERSION_INFO >= (3, 5):
        srv = start_server(
            *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
            *("--groups", "X25519MLKEM768", "--fingerprint", "--log-format", "json"),
        )
        try:
            cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-quiet"]
            cmd += ["-groups", "X25519MLKEM768", "-CAfile", str(ca_pki.ca.cert)]
            p = subprocess.run(cmd, input=b"pq\x00", capture_output=True, timeout=20, check=False)
            assert p.stdout == b"pq", p.stderr
            (rec,) = srv.wait_for_record(outcome="terminated")
            assert rec["offered_key_share_groups"] == ["X25519MLKEM768"]
        finally:
            stop_cleanly(srv)
    else:
        # OpenSSL 3.0 would silently ignore the whole list: said clearly instead.
        p = serve_groups(ca_pki, "X25519MLKEM768,X25519")
        assert p.returncode == 2
        err = p.stderr.decode()
        assert "does not offer X25519MLKEM768" in err and "need OpenSSL 3.5 or later" in err


@pytest.mark.parametrize(
    ("groups", "env", "message"),
    [
        ("P-999", {}, "unknown group 'P-999'"),
        (",", {}, "needs at least one group"),
        ("P-384", {"OPENSSL_CONF": "/dev/null"}, "--groups cannot apply: OPENSSL_CONF is set"),
    ],
)
def test_bad_groups_are_usage_errors(
    ca_pki: Pki, groups: str, env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = serve_groups(ca_pki, groups)
    assert p.returncode == 2 and message in p.stderr.decode(), p.stderr
    # Said as every other usage error of serve says it (it said "tlsecho: error:").
    assert p.stderr.decode().startswith("tlsecho serve: error: "), p.stderr
    assert "Traceback" not in p.stderr.decode()
    assert not os.environ.get("TLSECHO_GROUPS_DIR")
