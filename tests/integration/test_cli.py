"""The command line as a user runs it: real processes over real TLS."""

from __future__ import annotations

import ast
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.helpers import (
    TLSECHO,
    ServerProcess,
    as_text,
    echo_exactly,
    send,
    start_server,
    stop_cleanly,
    tls_client,
)
from tlsecho.pki.certs import CertPair

MESSAGE = b"This is the message. It will be sent in parts."


def one_line_error(p: subprocess.CompletedProcess[bytes], *fragments: str, status: int = 1) -> str:
    """The process failed (``status``: 1, or 2 for a usage error) and said why
    in exactly one line, its last, with no traceback (transcript lines logged
    before the failure may precede it)."""
    err = p.stderr.decode()
    assert p.returncode == status, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    errors = [ln for ln in lines if ": error: " in ln]
    assert errors == lines[-1:], err
    for f in fragments:
        assert f in errors[0], err
    return errors[0]


def received_chunks(err: str, tag: str) -> bytes:
    prefix = f"{tag}: received "
    return b"".join(
        ast.literal_eval(ln[len(prefix) :]) for ln in err.splitlines() if ln.startswith(prefix)
    )


# -- the original transcript --------------------------------------------------
def test_original_transcript(server: ServerProcess, pki: CertPair) -> None:
    p = send(server.port, "--cafile", str(pki.cert))
    assert p.returncode == 0, p.stderr
    client = p.stderr.decode().splitlines()
    # The client's lines, in the original's order (chunking of the echo varies).
    head = [
        f"echo_client: connecting to 127.0.0.1 port {server.port}",
        "echo_client: sending b'This is the message. '",
        "echo_client: sending b'It will be sent '",
        "echo_client: sending b'in parts.'",
        "echo_client: waiting for response",
    ]
    assert client[:5] == head
    assert client[-2:] == ["echo_client: closing", "main: closing event loop"]
    assert all(ln.startswith("echo_client: received b") for ln in client[5:-2])
    assert received_chunks(p.stderr.decode(), "echo_client") == MESSAGE

    server.wait_for(r"message terminated, closing connection")
    lines = server.lines()
    start = lines.index("main: starting up on 127.0.0.1 port 0")
    assert lines[start : start + 2] == [
        "main: starting up on 127.0.0.1 port 0",
        f"main: listening on 127.0.0.1:{server.port}",
    ]
    tag = next(ln.split(":")[0] for ln in lines if ln.endswith(": connection accepted"))
    assert tag.startswith("echo_127.0.0.1_")
    conn = [ln for ln in lines if ln.startswith(tag + ":")]
    assert conn[0] == f"{tag}: connection accepted"
    text = "\n".join(conn)
    assert received_chunks(text, tag).rstrip(b"\x00") == MESSAGE
    sent = b"".join(
        ast.literal_eval(ln[len(tag) + 7 :]) for ln in conn if ln.startswith(f"{tag}: sent ")
    )
    assert sent == MESSAGE
    assert f"{tag}: message terminated, closing connection" in conn
    server.wait_for(r"done peer=.* in=47 out=46 discarded=0 .*end=terminated")


def test_default_level_is_one_line_per_connection(pki: CertPair) -> None:
    srv = start_server("--cert", str(pki.cert), "--key", str(pki.key))
    try:
        for _ in range(3):
            assert send(srv.port, "--cafile", str(pki.cert), "-q").returncode == 0
        srv.wait_for(r"end=terminated", count=3)
    finally:
        assert srv.stop() == 0
    conn_lines = [ln for ln in srv.lines() if ln.startswith("echo_")]
    assert len(conn_lines) == 3
    for ln in conn_lines:
        assert " tls=TLSv1.3 cipher=TLS_" in ln
        assert " in=47 out=46 discarded=0 duration=" in ln


def test_demo() -> None:
    p = subprocess.run([*TLSECHO, "demo"], capture_output=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "main: starting up on localhost port 0" in out
    assert ": connection accepted" in out
    assert ": message terminated, closing connection" in out
    assert "echo_client: sending b'in parts.'" in out
    assert "echo_client: waiting for response" in out
    assert received_chunks(out, "echo_client") == MESSAGE
    assert "main: closing event loop" in out


def test_python_m_and_version() -> None:
    p = subprocess.run([*TLSECHO, "--version"], capture_output=True, check=False)
    assert p.returncode == 0
    assert p.stdout.decode().startswith("tlsecho ")


# -- the client's failures ----------------------------------------------------
def test_wrong_ca_fails_with_a_hint(server: ServerProcess, other_pki: CertPair) -> None:
    p = send(server.port, "--cafile", str(other_pki.cert))
    one_line_error(p, "certificate verify failed", "self-signed certificate")


def test_no_cafile_and_unknown_server_suggests_cafile(server: ServerProcess) -> None:
    p = send(server.port)
    one_line_error(p, "certificate verify failed", "pass --cafile FILE")


def test_wrong_hostname_fails(server: ServerProcess, pki: CertPair) -> None:
    p = send(server.port, "--cafile", str(pki.cert), "--servername", "other.example")
    one_line_error(p, "hostname mismatch", "'other.example'")


def test_insecure_works_and_says_so(server: ServerProcess, other_pki: CertPair) -> None:
    p = send(server.port, "--cafile", str(other_pki.cert), "--insecure", "hi")
    assert p.returncode == 0, p.stderr
    assert "warning: --insecure" in p.stderr.decode()


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        p = send(s.getsockname()[1])
    one_line_error(p, "connection refused by 127.0.0.1 port")


def test_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # the kernel accepts; nobody answers the ClientHello
        p = send(s.getsockname()[1], "--timeout", "1", "--insecure")
    # TCP connected (the backlog did it): the TLS handshake is what timed out.
    one_line_error(p, "timed out after 1 s in the TLS handshake")


# -- stdin mode ---------------------------------------------------------------
def test_stdin_is_binary_safe(server: ServerProcess, pki: CertPair) -> None:
    data = bytes(range(1, 256)) * 4096 + b"\r\n\xff\xfe"
    p = send(server.port, "--cafile", str(pki.cert), "-", stdin=data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data
    assert p.stderr == b""


def test_stdin_with_a_nul_is_refused(server: ServerProcess, pki: CertPair) -> None:
    p = send(server.port, "--cafile", str(pki.cert), "-", stdin=b"abc\x00def")
    one_line_error(p, "NUL byte at offset 3", status=2)


# -- the default certificate --------------------------------------------------
def test_default_certificate_is_made_once_and_trusted(
    _isolated_data_home: Path,  # noqa: PT019 (its value is used)
) -> None:
    srv = start_server()
    try:
        created = srv.wait_for(r"created default certificate")[0]
        path = Path(created.split("certificate ", 1)[1].split(" ")[0])
        assert path == _isolated_data_home / "tlsecho" / "tlsecho.crt"
        # No --cafile: send trusts the default certificate with hostname checks on.
        p = send(srv.port, "-q")
        assert p.returncode == 0, p.stderr
    finally:
        assert srv.stop() == 0
    srv2 = start_server()
    try:
        srv2.wait_for(rf"using default certificate {path}")
    finally:
        assert srv2.stop() == 0


# -- start-up errors ----------------------------------------------------------
def serve(*args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [*TLSECHO, "serve", "--host", "127.0.0.1", *args]
    return subprocess.run(cmd, capture_output=True, timeout=30, check=False)


def test_port_in_use(server: ServerProcess, pki: CertPair) -> None:
    p = serve("--port", str(server.port), "--cert", str(pki.cert), "--key", str(pki.key))
    one_line_error(p, f"cannot listen on 127.0.0.1:{server.port}: address already in use")


def test_missing_certificate(tmp_path: Path, pki: CertPair) -> None:
    p = serve("--port", "0", "--cert", str(tmp_path / "nope.crt"), "--key", str(pki.key))
    one_line_error(p, "certificate file not found")


def test_cert_without_key(pki: CertPair) -> None:
    p = serve("--port", "0", "--cert", str(pki.cert))
    one_line_error(p, "--cert and --key go together", status=2)


def test_key_not_matching(pki: CertPair, other_pki: CertPair) -> None:
    p = serve("--port", "0", "--cert", str(pki.cert), "--key", str(other_pki.key))
    one_line_error(p, "does not match key")


def test_unreadable_key(tmp_path: Path, pki: CertPair) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    p = serve("--port", "0", "--cert", str(pki.cert), "--key", str(garbage))
    one_line_error(p, "is not a PEM private key")


@pytest.fixture
def encrypted_key(tmp_path: Path, pki: CertPair) -> Path:
    key = load_pem_private_key(pki.key.read_bytes(), None)
    path = tmp_path / "enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    return path


def test_encrypted_key_without_password(pki: CertPair, encrypted_key: Path) -> None:
    p = serve("--port", "0", "--cert", str(pki.cert), "--key", str(encrypted_key))
    one_line_error(p, "is encrypted: pass --key-password")


def test_encrypted_key_wrong_password(pki: CertPair, encrypted_key: Path) -> None:
    args = ["--cert", str(pki.cert), "--key", str(encrypted_key), "--key-password", "nope"]
    one_line_error(serve("--port", "0", *args), "wrong --key-password")


def test_encrypted_key_with_password_serves(pki: CertPair, encrypted_key: Path) -> None:
    srv = start_server(
        "--cert", str(pki.cert), "--key", str(encrypted_key), "--key-password", "s3cret"
    )
    try:
        assert send(srv.port, "--cafile", str(pki.cert), "-q", "x").returncode == 0
    finally:
        assert srv.stop() == 0


# -- signals ------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_cleanly(pki: CertPair, sig: int) -> None:
    srv = start_server("--cert", str(pki.cert), "--key", str(pki.key))
    assert srv.stop(sig) == 0
    lines = srv.lines()
    assert lines[-3:] == [
        "main: closing server",
        "main: served 0 connections (none)",
        "main: closing event loop",
    ]
    assert "Traceback" not in "\n".join(lines)


def test_sigterm_drains_open_sessions(pki: CertPair) -> None:
    """SIGTERM stops accepting, but a session mid-message finishes normally."""
    srv = start_server(
        "--cert", str(pki.cert), "--key", str(pki.key), "--drain-timeout", "20",
        "--log-format", "json",
    )  # fmt: skip
    with tls_client(srv.port, pki.cert) as s:
        assert echo_exactly(s, b"before the signal ") == b"before the signal "
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"draining 1 connection for up to 20 s")
        with pytest.raises(ConnectionRefusedError):  # no new connections while draining
            tls_client(srv.port, pki.cert).close()
        assert echo_exactly(s, b"after it") == b"after it"
        s.sendall(b"\x00")
        assert s.recv(100) == b""  # the session ended by itself, cleanly
    # It exits on the one signal; stop() would send a second ("now") if the
    # process had not quite gone yet.
    assert srv.proc.wait(timeout=20) == 0
    assert srv.stop() == 0
    (rec,) = srv.records()
    assert (rec["bytes_in"], rec["bytes_out"], rec["outcome"]) == (27, 26, "terminated")
    assert "main: served 1 connection (terminated=1)" in map(as_text, srv.lines())


def test_drain_timeout_then_close_notify(pki: CertPair) -> None:
    srv = start_server(
        "--cert", str(pki.cert), "--key", str(pki.key), "--drain-timeout", "0.5",
        "--log-format", "json",
    )  # fmt: skip
    with tls_client(srv.port, pki.cert) as s:
        assert echo_exactly(s, b"mid-message") == b"mid-message"
        srv.proc.send_signal(signal.SIGTERM)
        assert s.recv(100) == b""  # close_notify after the drain, not a reset
    # It exits on the one signal (stop() would send a second one if the
    # process had not quite gone yet, and that one means "now").
    assert srv.proc.wait(timeout=20) == 0
    assert srv.stop() == 0
    assert [rec["outcome"] for rec in srv.records()] == ["server-shutdown"]


def test_second_signal_stops_at_once(pki: CertPair) -> None:
    srv = start_server("--cert", str(pki.cert), "--key", str(pki.key), "--drain-timeout", "60")
    with tls_client(srv.port, pki.cert) as s:
        assert echo_exactly(s, b"x") == b"x"
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for(r"draining 1 connection\b")
        started = time.monotonic()
        assert srv.stop(signal.SIGINT) == 0
        assert time.monotonic() - started < 10
    assert "main: second signal: closing every connection now" in srv.lines()


def test_ipv6_loopback(pki: CertPair) -> None:
    srv = start_server("--cert", str(pki.cert), "--key", str(pki.key), host="::1")
    try:
        assert srv.lines()[-1] == f"main: listening on [::1]:{srv.port}"
        cmd = [*TLSECHO, "send", "--host", "::1", "--port", str(srv.port)]
        cmd += ["--cafile", str(pki.cert), "-q", "v6"]
        p = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
        assert p.returncode == 0, p.stderr
        srv.wait_for(r"^echo_::1_\d+: done peer=\[::1\]:\d+ .*end=terminated")
    finally:
        assert srv.stop() == 0


def test_cli_main_is_callable_without_a_subprocess(capsys: pytest.CaptureFixture[str]) -> None:
    from tlsecho.cli import main

    assert main(["send", "--port", "0"]) == 2  # a usage error
    assert "port must be 1..65535" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_send_and_probe_take_ipv6_in_both_spellings(pki: CertPair, host: str) -> None:
    """Issue 17: send --host '[::1]' said "cannot resolve '[::1]'" while
    probe and bench wanted [::1]:PORT; every command takes both now."""
    srv = start_server(*("--cert", str(pki.cert), "--key", str(pki.key)), host="::1")
    try:
        p = send(srv.port, "--host", host, "--cafile", str(pki.cert), "hi")
        assert p.returncode == 0 and b"received b'hi'" in p.stderr, p.stderr
        bench = [*TLSECHO, "bench", host, "--port", str(srv.port), "--cafile", str(pki.cert)]
        bench += ["--servername", "localhost", "-n", "5", "-c", "1", "--warmup", "0"]
        q = subprocess.run(bench, capture_output=True, timeout=60, check=False)
        assert q.returncode == 0, q.stderr
    finally:
        stop_cleanly(srv)


def test_send_help_points_large_messages_to_stdin() -> None:
    """A multi-megabyte PART dies in the shell (E2BIG) before tlsecho runs:
    the help says how to send one (issue 17 friction)."""
    p = subprocess.run([*TLSECHO, "send", "--help"], capture_output=True, text=True, check=True)
    assert "tlsecho send - < FILE" in " ".join(p.stdout.split())
