"""--workers N: several processes on one port, supervised; metrics summed."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, ServerProcess, as_text, scrape, send, start_server, stop_cleanly
from tlsecho.pki.certs import Pki, write_pair


def send_ok(port: int, ca: Pki) -> int:
    """The exit status of a quiet ``tlsecho send`` trusting ``ca``."""
    return send(port, "--cafile", str(ca.ca.cert), quiet=True, timeout=30).returncode


@pytest.mark.slow
def test_two_workers_share_the_port_and_the_metrics(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert",
        str(ca_pki.server.cert),
        "--key",
        str(ca_pki.server.key),
        "--workers",
        "2",
        "--metrics",
        "127.0.0.1:0",
        "--log-format",
        "json",
    )
    try:
        url = srv.wait_for(r"metrics on http://")[0].split("metrics on ")[1].split()[0]
        srv.wait_for(r"listening on 127.0.0.1:", count=2)  # both workers
        pids = [int(m) for ln in srv.lines() for m in re.findall(r"worker \d \(pid (\d+)\)", ln)]
        assert len(pids) == 2
        for _ in range(20):
            assert send_ok(srv.port, ca_pki) == 0
        # Each connection's record names the worker that served it.
        done = srv.wait_for_record(outcome="terminated", count=20)
        assert {rec["worker"] for rec in done} <= {1, 2}
        assert srv.wait_for(r"^worker1: starting up on 127\.0\.0\.1 port ")
        m = scrape(url)
        assert m[("tlsecho_connections_total", (("outcome", "terminated"),))] == 20
        assert m[("tlsecho_handshake_duration_seconds_count", ())] == 20
        assert m[("tlsecho_connections_active", ())] == 0
        # SIGHUP reaches every worker.
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for(r"^worker\d: reloaded certificate ", count=2)
        # A worker that dies is replaced, and the port keeps serving.
        os.kill(pids[0], signal.SIGKILL)
        srv.wait_for(r"worker \d exited with -9: restarting it")
        srv.wait_for(r"listening on 127.0.0.1:", count=3)
        for _ in range(4):
            assert send_ok(srv.port, ca_pki) == 0
    finally:
        assert srv.stop() == 0
    lines = [as_text(ln) for ln in srv.lines()]
    served = [int(m) for ln in lines for m in re.findall(r"^worker\d: served (\d+) conn", ln)]
    assert len(served) == 2  # the surviving worker and the replacement
    assert sum(served) >= 4
    # The supervisor sums them: one line for the whole server.
    totals = [ln for ln in lines if ln.startswith("main: served ")]
    assert len(totals) == 1, totals
    noun = "connection" if sum(served) == 1 else "connections"
    assert totals[0].startswith(f"main: served {sum(served)} {noun} in all, 2 worker runs (")
    assert "Traceback" not in "\n".join(srv.lines())


def test_workers_port_in_use(ca_pki: Pki) -> None:
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key))
    try:
        p = subprocess.run(
            [
                *TLSECHO,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(srv.port),
                "--workers",
                "2",
                "--cert",
                str(ca_pki.server.cert),
                "--key",
                str(ca_pki.server.key),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    finally:
        assert srv.stop() == 0
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err.splitlines()[-1] == (
        f"tlsecho serve: error: cannot listen on 127.0.0.1:{srv.port}: address already in use"
    )
    assert "Traceback" not in err


def test_workers_auto_is_one_per_cpu(ca_pki: Pki) -> None:
    cpus = os.cpu_count() or 1
    cert, key = str(ca_pki.server.cert), str(ca_pki.server.key)
    srv = start_server("--cert", cert, "--key", key, "--workers", "auto")
    try:
        srv.wait_for(r"listening on 127.0.0.1:", count=cpus)
        assert send_ok(srv.port, ca_pki) == 0
    finally:
        assert srv.stop() == 0
    assert len([ln for ln in srv.lines() if "listening on 127.0.0.1:" in ln]) == cpus
    bad = subprocess.run(
        [*TLSECHO, "serve", "--workers", "many"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2
    assert "must be a number or 'auto', not 'many'" in bad.stderr


def test_a_worker_killed_right_after_it_listens_is_replaced(ca_pki: Pki) -> None:
    """Only a worker that never listened failed at start-up (and stops the
    server); one that dies a moment after listening is restarted."""
    cert, key = str(ca_pki.server.cert), str(ca_pki.server.key)
    srv = start_server("--cert", cert, "--key", key, "--workers", "2")
    try:
        srv.wait_for(r"listening on 127.0.0.1:", count=2)
        pids = [int(m) for ln in srv.lines() for m in re.findall(r"worker \d \(pid (\d+)\)", ln)]
        os.kill(pids[0], signal.SIGKILL)
        srv.wait_for(r"worker \d exited with -9: restarting it")
        srv.wait_for(r"listening on 127.0.0.1:", count=3)
        assert send_ok(srv.port, ca_pki) == 0
    finally:
        assert srv.stop() == 0
    assert not [ln for ln in srv.lines() if "failed at start-up" in ln]


def test_workers_with_metrics_poll_their_certificates(tmp_path: Path) -> None:
    """--reload-interval works in every worker, --metrics or not (a worker
    with --metrics used to skip setting up the poll)."""
    first = write_pair(tmp_path)
    srv = start_server(
        "--cert", str(first.cert), "--key", str(first.key), "--workers", "2",
        "--metrics", "127.0.0.1:0", "--reload-interval", "0.2",
    )  # fmt: skip
    try:
        srv.wait_for(r"listening on 127.0.0.1:", count=2)
        write_pair(tmp_path, force=True)
        srv.wait_for(r"^worker\d: reloaded certificate ", count=2)
    finally:
        stop_cleanly(srv)


def two_workers_in_a_terminal(ca_pki: Pki, drain: str) -> tuple[ServerProcess, ssl.SSLContext]:
    """``serve --workers 2`` in its own process group (a terminal's
    foreground job), listening; and a client context that trusts it."""
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key),
        "--workers", "2", "--drain-timeout", drain, "--log-format", "json",
        new_session=True,
    )  # fmt: skip
    srv.wait_for(r"listening on 127.0.0.1:", count=2)
    return srv, ssl.create_default_context(cafile=str(ca_pki.ca.cert))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "systemd"])
def test_one_ctrl_c_in_a_terminal_drains_the_workers(ca_pki: Pki, sig: signal.Signals) -> None:
    """Ctrl-C reaches the whole process group (and systemd's SIGTERM every
    process of the unit): each worker got its own signal and the
    supervisor's forwarded stop, took the two for a second signal and cut
    every open session at once. One stop is one stop: the sessions finish;
    a second one closes them at once."""
    srv, ctx = two_workers_in_a_terminal(ca_pki, drain="20")

    def open_session(i: int) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"before %d " % i)
        assert s.recv(100) == b"before %d " % i
        return s

    sessions = [open_session(i) for i in range(16)]  # both workers hold some
    os.killpg(srv.proc.pid, sig)  # what one Ctrl-C in a terminal does
    srv.wait_for(r"main: closing server: stopping 2 workers")
    srv.wait_for(r"^worker\d: closing server", count=2)
    for i, s in enumerate(sessions):
        s.sendall(b"after %d\x00" % i)
        got = b""
        while chunk := s.recv(100):
            got += chunk
        assert got == b"after %d" % i  # the session finished, then close_notify
        s.close()
    assert srv.stop() == 0
    texts = [as_text(ln) for ln in srv.lines()]
    assert not [ln for ln in texts if "second signal" in ln]
    done = srv.records()
    assert len(done) == 16 and {r["outcome"] for r in done} == {"terminated"}
    assert {r["worker"] for r in done} == {1, 2}


def test_a_second_ctrl_c_closes_the_workers_sessions_at_once(ca_pki: Pki) -> None:
    srv, ctx = two_workers_in_a_terminal(ca_pki, drain="60")
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"x")
        assert s.recv(100) == b"x"
        os.killpg(srv.proc.pid, signal.SIGINT)
        srv.wait_for(r"^worker\d: closing server", count=2)
        os.killpg(srv.proc.pid, signal.SIGINT)
        assert s.recv(100) == b""  # close_notify now, not after 60 s
    assert srv.stop() == 0
    assert [r["outcome"] for r in srv.records()] == ["server-shutdown"]
    assert any("second signal" in as_text(ln) for ln in srv.lines())
