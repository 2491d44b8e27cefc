"""What send, probe and bench tell a user when the other side is not what
they expected: one line that names the cause and what to try."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, fingerprint, send, start_server, stop_cleanly
from tlsecho.pki.certs import CertPair, Pki


@pytest.fixture
def loaded_bench(ca_pki: Pki, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A bench run of a minute, in two processes, with its load flowing."""
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "-v")
    out = tmp_path / "run.json"
    target = ["--host", "127.0.0.1", "--port", str(srv.port), "--cafile", str(ca_pki.ca.cert)]
    load = ["-c", "2", "-p", "2", "-d", "60", "--warmup", "0", "--json", str(out)]
    bench = subprocess.Popen(
        [*TLSECHO, "bench", *target, *load],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        srv.wait_for(r": sent b", count=200, timeout=30)  # echoes are flowing
        yield bench, out
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
        stop_cleanly(srv)


def test_ctrl_c_during_bench_keeps_what_was_measured(
    loaded_bench: tuple[subprocess.Popen[bytes], Path],
) -> None:
    bench, out = loaded_bench
    os.killpg(bench.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stdout, stderr = bench.communicate(timeout=30)
    assert bench.returncode == 130, stderr
    assert b"Traceback" not in stderr, stderr
    assert b"interrupted" in stdout.splitlines()[0]
    assert b"operations" in stdout  # the table
    r = json.loads(out.read_text())
    assert r["interrupted"] is True
    assert r["operations"] > 0 and 0 < r["seconds"] < 60
    assert r["errors"] == {} and r["mismatched_bytes"] == 0


def test_a_second_ctrl_c_stops_bench_at_once(
    loaded_bench: tuple[subprocess.Popen[bytes], Path],
) -> None:
    bench, _ = loaded_bench
    os.killpg(bench.pid, signal.SIGINT)
    os.killpg(bench.pid, signal.SIGINT)
    _, stderr = bench.communicate(timeout=30)
    assert bench.returncode == 130, stderr
    assert b"Traceback" not in stderr, stderr


def test_server_closing_during_a_streamed_send_is_one_line(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key),
        "--mode", "raw", "--max-session", "0.5",
    )  # fmt: skip
    target = ["--host", "127.0.0.1", "--port", str(srv.port), "--cafile", str(ca_pki.ca.cert)]
    client = subprocess.Popen(
        [*TLSECHO, "send", *target, "--mode", "raw", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert client.stdin is not None
    deadline = time.monotonic() + 30
    try:
        # Stream until the client gives up (the server ends the session at 0.5 s).
        while client.poll() is None and time.monotonic() < deadline:
            try:
                client.stdin.write(b"a" * 65536)
                client.stdin.flush()
            except BrokenPipeError:
                break
        err = client.communicate(timeout=30)[1].decode()  # closes stdin: end of input
        assert client.returncode == 1, err
        assert err.splitlines() == [err.splitlines()[-1]], err  # exactly one line
        assert re.fullmatch(
            r"tlsecho send: error: server closed early after \d+ of \d+ bytes", err.strip()
        ), err
        srv.wait_for(r"session-timeout: closing connection")
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
        stop_cleanly(srv)


def test_probe_json_on_a_failure_is_json() -> None:
    p = subprocess.run(
        [*TLSECHO, "probe", "127.0.0.1:1", "--json"], capture_output=True, timeout=60
    )
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert r["port"] == 1 and "connection refused" in r["error"]


def test_probe_table_shows_the_whole_fingerprint(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--log-format", "json"
    )
    try:
        cmd = [*TLSECHO, "probe", f"localhost:{srv.port}", "--cafile", str(ca_pki.ca.cert)]
        p = subprocess.run(
            cmd, capture_output=True, timeout=60, env={**os.environ, "COLUMNS": "60"}
        )
        assert p.returncode == 0, p.stderr
        table = re.sub(r"[│|\s]", "", p.stdout.decode())  # folded lines joined
        assert fingerprint(ca_pki.server.cert.read_bytes()).replace(":", "") in table.replace(
            ":", ""
        )
    finally:
        stop_cleanly(srv)


def test_send_to_a_plain_port_says_it_is_not_tls() -> None:
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        client = subprocess.Popen(
            [*TLSECHO, "send", "--host", "127.0.0.1", "--port", str(port), "--insecure"],
            stderr=subprocess.PIPE,
        )
        conn, _ = lsock.accept()
        with conn:
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            _, err = client.communicate(timeout=30)
    assert client.returncode == 1
    assert f"127.0.0.1 port {port} does not speak TLS" in err.decode()


def test_a_framing_mismatch_says_so_when_it_times_out(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--mode", "line"
    )
    try:
        # nul: the message and a NUL, no newline; a line server waits for one.
        p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--timeout", "1", "hello")
        err = p.stderr.decode()
        assert p.returncode == 1, err
        assert err.strip().endswith("does the server use --mode nul?"), err
    finally:
        stop_cleanly(srv)


@pytest.mark.parametrize(
    ("kind", "detail"),
    [("expired", "certificate has expired"), ("not-yet-valid", "certificate is not yet valid")],
)
def test_an_expired_server_certificate_is_not_blamed_on_the_ca(
    ca_pki: Pki, kind: str, detail: str
) -> None:
    bad = ca_pki.bad[kind]
    srv = start_server("--cert", str(bad.cert), "--key", str(bad.key))
    try:
        p = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--servername", "localhost")
        err = p.stderr.decode()
        assert p.returncode == 1, err
        assert detail in err
        assert "the server's certificate is at fault" in err
        assert "or its CA?" not in err  # the CA file was the right one
    finally:
        stop_cleanly(srv)


@pytest.mark.parametrize("version", ["v1", "v2", "any"])
def test_send_to_a_proxy_protocol_server_suggests_the_header(ca_pki: Pki, version: str) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key),
        "--proxy-protocol", version,
    )  # fmt: skip
    try:
        p = send(srv.port, "--cafile", str(ca_pki.ca.cert))
        err = p.stderr.decode()
        assert p.returncode == 1, err
        assert "during the handshake (does the server expect a PROXY header first?)" in err
        # With the header it is served; the hint is not given to a client that sent one.
        header = "v2" if version == "any" else version
        ok = send(srv.port, "--cafile", str(ca_pki.ca.cert), "--proxy-header", header)
        assert ok.returncode == 0, ok.stderr
    finally:
        stop_cleanly(srv)


def test_send_refusing_the_certificate_sends_the_alert(ca_pki: Pki, pki: CertPair) -> None:
    """Issue 21: a `tlsecho send` that refused the server's certificate left
    "closed without close_notify" in the server's log (asyncio dropped the
    alert OpenSSL wrote); curl's refusal shows as "tlsv1 alert unknown ca"."""
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--log-format", "json"
    )
    try:
        p = send(srv.port, "--cafile", str(pki.cert), "--servername", "localhost", "hi")
        assert p.returncode == 1, p.stderr
        assert "certificate verify failed" in p.stderr.decode()
        srv.wait_for_record(outcome="handshake-failed", reason="tlsv1 alert unknown ca")
    finally:
        stop_cleanly(srv)
