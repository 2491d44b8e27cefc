"""tlsecho bench against real servers: numbers are produced, and a wrong echo
makes the run fail."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TLSECHO, ServerProcess, start_server
from tlsecho.bench.histogram import Histogram
from tlsecho.certs import Pki

PEERS = Path(__file__).parent.parent / "peers"


@pytest.fixture(scope="module")
def bench_server(ca_pki: Pki) -> Iterator[ServerProcess]:
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key))
    yield srv
    assert srv.stop() == 0


def bench(port: int, ca: Path, *args: str) -> tuple[int, dict[str, object]]:
    cmd = [*TLSECHO, "bench", "--host", "localhost", "--port", str(port), "--cafile", str(ca)]
    cmd += ["--json", "--duration", "1", "--warmup", "0.2", *args]
    p = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    return p.returncode, json.loads(p.stdout)


@pytest.mark.parametrize(
    ("args", "min_ops"),
    [
        (["--scenario", "pingpong", "-c", "4", "-p", "2"], 100),
        (["--scenario", "stream", "-c", "2", "-s", "65536"], 10),
        (["--scenario", "connect", "-c", "2"], 10),
    ],
    ids=["pingpong", "stream", "connect"],
)
def test_bench_scenarios(
    bench_server: ServerProcess, ca_pki: Pki, args: list[str], min_ops: int
) -> None:
    rc, r = bench(bench_server.port, ca_pki.ca.cert, *args)
    assert rc == 0, r
    assert r["ok"] is True
    assert r["mismatched_bytes"] == 0
    assert r["errors"] == {}
    assert int(r["operations"]) >= min_ops  # type: ignore[call-overload]
    assert int(r["bytes_verified"]) > 0  # type: ignore[call-overload]
    if r["scenario"] != "stream":
        lat = r["latency_us"]
        assert isinstance(lat, dict)
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_bench_fails_on_a_wrong_echo(ca_pki: Pki) -> None:
    """Against node's TLS echo server that flips a byte, the run must fail."""
    proc = subprocess.Popen(
        [
            "node",
            str(PEERS / "node_echo_server.js"),
            str(ca_pki.server.cert),
            str(ca_pki.server.key),
            "corrupt",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    try:
        rc, r = bench(port, ca_pki.ca.cert, "--scenario", "connect", "-c", "1")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    assert rc == 1
    assert r["ok"] is False
    assert int(r["mismatched_bytes"]) > 0  # type: ignore[call-overload]


def test_histogram_percentiles_are_close() -> None:
    import random

    rng = random.Random(5)
    values = sorted(rng.randrange(1_000, 50_000_000) for _ in range(20_000))
    h = Histogram()
    for v in values:
        h.record(v)
    for p in (50, 90, 99, 99.9):
        exact = values[min(len(values) - 1, int(len(values) * p / 100 + 0.999999) - 1)]
        assert exact <= h.percentile(p) <= exact * 1.008  # an upper bound within 1/128
    assert h.percentile(100) == values[-1]
    other = Histogram()
    other.record(7)
    h.merge(other)
    assert h.total == 20_001
    assert h.min == 7
