"""--workers N: several processes on one port, supervised; metrics summed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.helpers import TLSECHO, as_text, scrape, send, start_server, stop_cleanly
from tlsecho.certs import Pki, write_pair


def send_ok(port: int, ca: Pki) -> int:
    """The exit status of a quiet ``tlsecho send`` trusting ``ca``."""
    return send(port, "--cafile", str(ca.ca.cert), quiet=True, timeout=30).returncode


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
    assert totals[0].startswith(f"main: served {sum(served)} connections in all, 2 worker runs (")
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
