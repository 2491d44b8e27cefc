"""Locust headless, a master and two workers on loopback, against tlsecho serve."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import start_server
from tlsecho.pki.certs import Pki

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).with_name("locust"))


@pytest.mark.slow
def test_locust_master_and_two_workers(ca_pki: Pki, tmp_path: Path) -> None:
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), "--log-format", "json"
    )  # fmt: skip
    # Locust's master cannot bind port 0 and report it: take a free port and
    # release it just before the master binds it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        master_port = s.getsockname()[1]
    env = {
        **os.environ,
        "TLSECHO_HOST": "localhost",
        "TLSECHO_PORT": str(srv.port),
        "TLSECHO_CAFILE": str(ca_pki.ca.cert),
    }
    common = ["-f", str(ROOT / "examples" / "locustfile.py")]
    master = subprocess.Popen(
        [
            LOCUST,
            *common,
            "--headless",
            "--master",
            "--expect-workers",
            "2",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "5s",
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [
                LOCUST,
                *common,
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(master_port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        out = master.communicate(timeout=90)[0].decode()
    finally:
        for w in workers:
            w.wait(30)
        assert srv.stop() == 0
    assert master.returncode == 0, out
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 0, out
    assert int(total["Failure Count"]) == 0, out
    assert int(rows["pingpong"]["Request Count"]) > 0
    assert int(rows["connect"]["Request Count"]) > 0
    # The server saw the workers' sessions end cleanly.
    assert any(rec["outcome"] == "terminated" for rec in srv.records())
