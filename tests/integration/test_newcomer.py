"""A newcomer's first hour (issue 11): each bug found by trying every command
as a new user would, as a test that failed before its fix."""

from __future__ import annotations

import asyncio
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
from tlsecho import ClientConfig, EchoClient, ServerConfig, serve
from tlsecho.pki.certs import CertPair, Pki


def run_closed_stdout(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``tlsecho ARGS`` writing to a pipe whose reader is already gone."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [*TLSECHO, *args], input=stdin, stdout=w, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(w)


# Bug 4: BrokenPipeError tracebacks when stdout closes early ----------------------
@pytest.mark.parametrize("command", [["demo"], ["cert", "--out", "{tmp}"]], ids=["demo", "cert"])
def test_closed_stdout_is_a_quiet_exit(command: list[str], tmp_path: Path) -> None:
    p = run_closed_stdout(*(c.format(tmp=tmp_path / "out") for c in command))
    assert p.stderr == b""
    assert p.returncode == 141  # as a Unix tool killed by SIGPIPE


def test_closed_stdout_during_a_streamed_send(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--mode", "raw"
    )
    try:
        args = ["--port", str(srv.port), "--cafile", str(ca_pki.ca.cert), "--mode", "raw", "-"]
        p = run_closed_stdout("send", "--host", "127.0.0.1", *args, stdin=b"x" * 200_000)
        assert b"Traceback" not in p.stderr, p.stderr
        assert p.returncode == 141, p.stderr
    finally:
        stop_cleanly(srv)


# Frictions: usage errors exit 2, before any work ----------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["serve", "--port", "99999"], "port must be 0..65535"),
        (["serve", "--workers", "0"], "--workers must be at least 1"),
        (["send", "--timeout", "0"], "timeout must be a positive number"),
        (["bench", "-c", "0"], "--connections and --processes must be at least 1"),
        # Bug 5: -d 0 ran for the default 5 s.
        (["bench", "--port", "1", "-d", "0"], "--duration must be positive"),
        # Bug 6: --rate 0.5 ran, measured nothing and blamed errors.
        (["bench", "--port", "1", "--rate", "0.5"], "under one message per connection"),
        (["cert", "--rsa-bits", "4096"], "--rsa-bits goes with --key-type rsa"),
        (["cert", "--client-name", "x"], "--client-name goes with --ca"),
        (["send", "--alpn", ""], "expected one or more comma-separated names"),
    ],
)
def test_usage_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    p = subprocess.run([*TLSECHO, *args], capture_output=True, timeout=60, cwd=tmp_path)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert fragment in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cert_with_bad_days_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new"
    p = subprocess.run(
        [*TLSECHO, "cert", "--days", "0", "--out", str(out)], capture_output=True, timeout=60
    )
    assert p.returncode == 2, p.stderr
    assert b"--days must be at least 1" in p.stderr
    assert not out.exists()


# Bug 2: --workers on a port in use joined the other server ---------------------------
def test_workers_refuse_a_port_another_server_listens_on(ca_pki: Pki) -> None:
    pair = ["--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)]
    first = start_server(*pair, "--workers", "2")
    cmd = [*TLSECHO, "serve", "--host", "127.0.0.1", "--port", str(first.port), *pair]
    # Its own process group: if it wrongly starts, its workers go with it.
    second = subprocess.Popen(
        [*cmd, "--workers", "2"], stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, err_bytes = second.communicate(timeout=30)
        err = err_bytes.decode()
        assert second.returncode == 1, err
        assert f"cannot listen on 127.0.0.1:{first.port}: address already in use" in err
        # The first server still has every connection.
        assert send(first.port, "--cafile", str(ca_pki.ca.cert), quiet=True).returncode == 0
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        stop_cleanly(first)


# Bug 7 (a handshake timeout was called a connect timeout): test_cli.test_timeout.


# Bug 8: the library raised raw Python errors for ordinary mistakes -------------------
def test_library_takes_str_paths_and_str_parts(pki: CertPair) -> None:
    async def main() -> None:
        # The annotations say Path; untyped callers pass str, and that works.
        cert, key = str(pki.cert), str(pki.key)
        server_cfg = ServerConfig(host="127.0.0.1", port=0, cert=cert, key=key)  # type: ignore[arg-type]
        assert server_cfg.cert == pki.cert
        async with serve(server_cfg) as addresses:
            port = addresses[0][1]
            cfg = ClientConfig(host="localhost", port=port, cafile=cert)  # type: ignore[arg-type]
            assert isinstance(cfg.cafile, Path)
            result = await EchoClient(cfg).send(["héllo ", b"world"])
            assert (result.sent, result.received) == (12, 12)  # UTF-8: é is two bytes

    asyncio.run(main())


def test_library_names_a_wrong_type() -> None:
    from tlsecho import ConfigError

    with pytest.raises(ConfigError, match="cafile must be a path, not int"):
        ClientConfig(cafile=3)  # type: ignore[arg-type]


# Bug 1: Ctrl-C during bench printed tracebacks and lost everything -------------------
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


# Bug 3: 'SSL connection is closed' once per write hid the real error -----------------
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


# Frictions --------------------------------------------------------------------------
def test_plot_without_matplotlib_fails_before_the_run(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('not installed')\n")
    # Port 1 refuses: had the run started, the error would be about it.
    cmd = [*TLSECHO, "bench", "--port", "1", "-d", "1", "--plot", str(tmp_path / "p.png")]
    env = {**os.environ, "PYTHONPATH": str(fake)}
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.decode().strip() == (
        "tlsecho bench: error: --plot needs matplotlib: pip install 'tlsecho[plot]'"
    )


def test_json_logs_make_start_up_errors_json_too(tmp_path: Path) -> None:
    cmd = [*TLSECHO, "serve", "--log-format", "json", "--cert", str(tmp_path / "missing.crt")]
    p = subprocess.run([*cmd, "--key", str(tmp_path / "k")], capture_output=True, timeout=60)
    assert p.returncode == 1
    last = json.loads(p.stderr.decode().splitlines()[-1])
    assert last["level"] == "error"
    assert last["message"].startswith("tlsecho serve: error: ")


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


def test_plugin_names_an_unknown_bad_kind(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
import pytest
from tlsecho import ConfigError

def test_kind(tlsecho_server_factory):
    with pytest.raises(ConfigError, match="not a bad certificate kind .*expired"):
        tlsecho_server_factory(bad="nope")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


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


def test_a_key_of_another_type_is_a_mismatch(tmp_path: Path) -> None:
    ec = tmp_path / "ec"
    rsa = tmp_path / "rsa"
    for out, args in ((ec, []), (rsa, ["--key-type", "rsa"])):
        subprocess.run(
            [*TLSECHO, "cert", "--out", str(out), *args], check=True, capture_output=True
        )
    cmd = [*TLSECHO, "serve", "--port", "0", "--cert", str(ec / "tlsecho.crt")]
    p = subprocess.run([*cmd, "--key", str(rsa / "tlsecho.key")], capture_output=True, timeout=60)
    assert p.returncode == 1
    assert b"does not match key" in p.stderr, p.stderr


def test_a_failing_plugin_test_shows_the_server_side(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
import socket
import ssl


def test_wrong_ca(tlsecho_server_factory):
    server = tlsecho_server_factory(bad="unknown-ca")
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
        except ssl.SSLError:
            pass
    server.wait_outcome("handshake-failed")
    assert False, "the user's assertion"
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [r".*Captured log call.*", r".*done peer=.*end=handshake-failed.*"]
    )


def test_a_reload_with_a_mismatched_key_says_so_as_start_up_does(tmp_path: Path) -> None:
    # It said NO_CERTIFICATE_ASSIGNED (OpenSSL's code) where start-up says
    # "certificate X does not match key Y" (a key of another type: b is RSA).
    for name, args in (("a", []), ("b", ["--key-type", "rsa"])):
        subprocess.run(
            [*TLSECHO, "cert", "--out", str(tmp_path / name), *args],
            check=True,
            capture_output=True,
        )
    cert, key = tmp_path / "a" / "tlsecho.crt", tmp_path / "a" / "tlsecho.key"
    srv = start_server("--cert", str(cert), "--key", str(key))
    try:
        key.write_bytes((tmp_path / "b" / "tlsecho.key").read_bytes())
        srv.proc.send_signal(signal.SIGHUP)
        line = srv.wait_for(r"reload failed")[0]
        assert f"certificate {cert} does not match key {key}" in line
        assert "NO_CERTIFICATE" not in line
        assert "keeping the current certificates" in line
        p = send(srv.port, "--cafile", str(cert), "still served")
        assert p.returncode == 0, p.stderr
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
