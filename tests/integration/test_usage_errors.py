"""A user's mistakes and the command line's manners: usage errors exit 2
and write nothing, start-up errors are one line (JSON with --log-format
json), a closed stdout is a quiet exit, the library names a wrong type."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, send, start_server, stop_cleanly
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
