"""tlsecho bench against real servers: numbers are produced, every option
does what it says, and a server that drops, duplicates, flips a byte or
stalls is caught."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TLSECHO, ServerProcess, start_server
from tlsecho.bench.histogram import Histogram
from tlsecho.pki.certs import Pki

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
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout)


def _int(r: dict[str, object], key: str) -> int:
    value = r[key]
    assert isinstance(value, int)
    return value


def _lat(r: dict[str, object], key: str = "latency_us") -> dict[str, float]:
    lat = r[key]
    assert isinstance(lat, dict)
    return lat


@pytest.mark.parametrize(
    ("args", "min_ops"),
    [
        (["--scenario", "pingpong", "-c", "4", "-p", "2"], 100),
        (["--scenario", "pingpong", "-c", "2", "-s", "40000"], 10),
        (["--scenario", "stream", "-c", "2", "-s", "65536"], 10),
        (["--scenario", "connect", "-c", "2"], 10),
    ],
    ids=["pingpong", "pingpong-large", "stream", "connect"],
)
def test_bench_scenarios(
    bench_server: ServerProcess, ca_pki: Pki, args: list[str], min_ops: int
) -> None:
    rc, r = bench(bench_server.port, ca_pki.ca.cert, *args)
    assert rc == 0, r
    assert r["ok"] is True
    assert r["mismatched_bytes"] == 0
    assert r["errors"] == {}
    assert _int(r, "operations") >= min_ops
    assert _int(r, "bytes_verified") > 0
    if r["scenario"] != "stream":
        lat = _lat(r)
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    env = r["environment"]
    assert isinstance(env, dict)
    assert env["openssl"].startswith("OpenSSL")
    timeline = r["timeline_ops_per_second"]
    assert isinstance(timeline, list)
    assert sum(timeline) == r["operations"]


def test_bench_count_sends_exactly_that_many(bench_server: ServerProcess, ca_pki: Pki) -> None:
    rc, r = bench(bench_server.port, ca_pki.ca.cert, "-c", "3", "--count", "500")
    assert rc == 0, r
    assert r["operations"] == 500
    rc, r = bench(bench_server.port, ca_pki.ca.cert, "-c", "3", "-p", "2", "-n", "301")
    assert rc == 0, r
    assert r["operations"] == 301
    rc, r = bench(bench_server.port, ca_pki.ca.cert, "-c", "4", "-n", "40", "--scenario", "connect")
    assert rc == 0, r
    assert r["operations"] == 40


def test_bench_takes_a_target_as_probe_does(bench_server: ServerProcess, ca_pki: Pki) -> None:
    # --port 1 would be refused: the HOST:PORT target wins.
    cmd = [*TLSECHO, "bench", f"localhost:{bench_server.port}", "--port", "1", "-n", "20"]
    p = subprocess.run(
        [*cmd, "--cafile", str(ca_pki.ca.cert), "--json"], capture_output=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["operations"] == 20


def test_bench_resume(bench_server: ServerProcess, ca_pki: Pki) -> None:
    rc, r = bench(bench_server.port, ca_pki.ca.cert, "--scenario", "connect", "-c", "2", "-n", "30")
    assert rc == 0 and r["resumed"] == 0
    args = ("--scenario", "connect", "-c", "2", "-n", "30", "--resume")
    rc, r = bench(bench_server.port, ca_pki.ca.cert, *args)
    assert rc == 0, r
    assert _int(r, "resumed") >= 26  # every connection but each slot's first
    assert _lat(r, "handshake_us")["p50"] > 0


def test_bench_resume_ratio_and_phases(bench_server: ServerProcess, ca_pki: Pki) -> None:
    args = ("--scenario", "connect", "-c", "4", "-n", "40", "--resume-ratio", "0.5")
    rc, r = bench(bench_server.port, ca_pki.ca.cert, *args)
    assert rc == 0, r
    # Every second handshake of a slot offers the session. A slot may make
    # one more connection as the count runs out (it sends nothing on it).
    made, resumed = _int(r, "connections_made"), _int(r, "resumed")
    assert 40 <= made <= 44 and made // 2 - 2 <= resumed <= made // 2 + 2
    phases = r["phases_us"]
    assert isinstance(phases, dict)
    assert set(phases) == {"TLSv1.3 full", "TLSv1.3 resumed"}
    assert phases["TLSv1.3 resumed"]["count"] == resumed
    assert phases["TLSv1.3 full"]["count"] == made - resumed
    for kind in phases.values():
        for name in ("tcp_connect", "tls_handshake", "first_byte"):
            assert 0 < kind[name]["p50"] <= kind[name]["max"]
    # A resumed handshake is no dearer than a full one (no certificate, no signature).
    full, resumed = phases["TLSv1.3 full"], phases["TLSv1.3 resumed"]
    assert resumed["tls_handshake"]["p50"] <= full["tls_handshake"]["p50"] * 1.5
    table = subprocess.run(
        [
            *(*TLSECHO, "bench", "--port", str(bench_server.port), "--cafile", str(ca_pki.ca.cert)),
            *("--scenario", "connect", "-c", "2", "-n", "10", "--resume-ratio", "1"),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert re.search(r"TLSv1\.3 resumed \(\d+\)", out) and "first byte p50" in out
    assert re.search(r"of 1\d connections made", out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--resume-ratio", "1.5"), "is a share, 0 to 1"),
        (("--resume-ratio", "0.5"), "applies to the connect scenario"),
        (("--scenario", "connect", "--resume", "--resume-ratio", "1"), "give one of them"),
    ],
)
def test_bench_resume_ratio_errors(args: tuple[str, ...], message: str) -> None:
    p = subprocess.run([*TLSECHO, "bench", *args], capture_output=True, timeout=60, check=False)
    assert p.returncode == 2 and message in p.stderr.decode()


@pytest.mark.slow
def test_bench_open_loop_keeps_the_rate(bench_server: ServerProcess, ca_pki: Pki) -> None:
    rc, r = bench(bench_server.port, ca_pki.ca.cert, "-c", "4", "--rate", "400", "-d", "2")
    assert rc == 0, r
    assert 700 <= _int(r, "operations") <= 820  # 400/s for 2 s, give or take a start
    assert r["rate"] == 400
    args = ("--scenario", "connect", "-c", "2", "--rate", "50", "-d", "2")
    rc, r = bench(bench_server.port, ca_pki.ca.cert, *args)
    assert rc == 0, r
    assert 85 <= _int(r, "operations") <= 105  # a connection every 20 ms
    assert r["late"] == 0


@pytest.mark.slow
def test_bench_raw_and_line_modes_with_proxy_header(ca_pki: Pki) -> None:
    cert, key = str(ca_pki.server.cert), str(ca_pki.server.key)
    for mode in ("raw", "line"):
        srv = start_server(
            "--cert", cert, "--key", key, "--mode", mode, "--proxy-protocol", "v2",
            "--log-format", "json",
        )  # fmt: skip
        try:
            args = ("--mode", mode, "--proxy-header", "v2", "-c", "2")
            rc, r = bench(srv.port, ca_pki.ca.cert, *args)
            assert rc == 0, r
            rc, r = bench(srv.port, ca_pki.ca.cert, *args, "--scenario", "connect")
            assert rc == 0, r
            assert _int(r, "operations") > 5
        finally:
            assert srv.stop() == 0
        assert not [line for line in srv.lines() if "Traceback" in line]
        ends = srv.records()
        assert len(ends) >= 8
        assert all(rec["outcome"] == "eof" for rec in ends)  # clean TLS closes


def test_bench_client_tls_options(ca_pki: Pki, tmp_path: Path) -> None:
    """send's TLS options reach every bench connection: a client certificate
    for mTLS, ALPN, the version bounds, SNI, and the key log."""
    srv = start_server(
        "--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key),
        "--client-ca", str(ca_pki.ca.cert), "--alpn", "echo", "--log-format", "json",
    )  # fmt: skip
    keylog = tmp_path / "keys.log"
    try:
        args = ("--cert", str(ca_pki.client.cert), "--key", str(ca_pki.client.key),
                "--alpn", "echo", "--min-version", "1.3", "--servername", "localhost",
                "--keylog", str(keylog), "--scenario", "connect", "-c", "1", "-n", "5")  # fmt: skip
        rc, r = bench(srv.port, ca_pki.ca.cert, *args)
        assert rc == 0, r
        assert r["operations"] == 5
        # Without the client certificate the server refuses every handshake.
        rc, r = bench(srv.port, ca_pki.ca.cert, "--scenario", "connect", "-c", "1", "-n", "3")
        assert rc == 1
        assert r["operations"] == 0 and r["errors"]
    finally:
        assert srv.stop() == 0
    done = [rec for rec in srv.records() if rec["outcome"] == "terminated"]
    assert len(done) == 5
    assert all(
        (rec["tls_version"], rec["alpn"], rec["sni"]) == ("TLSv1.3", "echo", "localhost")
        for rec in done
    )
    assert all(rec["client_cert"] for rec in done)
    assert keylog.read_text().count("CLIENT_TRAFFIC_SECRET_0") >= 5
    assert len([ln for ln in srv.lines() if "client certificate subject=" in ln]) >= 5


@pytest.mark.interop
def test_bench_against_socat_raw_echo(ca_pki: Pki, tmp_path: Path) -> None:
    """socat's OPENSSL-LISTEN with PIPE: a raw echo nobody here wrote."""
    pem = tmp_path / "server.pem"
    pem.write_bytes(ca_pki.server.cert.read_bytes() + ca_pki.server.key.read_bytes())
    proc = subprocess.Popen(
        ["socat", f"OPENSSL-LISTEN:0,bind=127.0.0.1,fork,reuseaddr,cert={pem},verify=0", "PIPE"],
        stderr=subprocess.DEVNULL,
    )
    try:
        port = _listening_port(proc.pid)
        rc, r = bench(port, ca_pki.ca.cert, "--mode", "raw", "-c", "2", "-s", "1024")
        assert rc == 0, r
        assert _int(r, "operations") > 50
    finally:
        proc.terminate()
        proc.wait(10)


def _listening_port(pid: int) -> int:
    import time

    for _ in range(100):
        out = subprocess.run(
            ["ss", "-Hltnp"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        for line in out:
            if f"pid={pid}," in line:
                return int(line.split()[3].rsplit(":", 1)[1])
        time.sleep(0.05)
    raise AssertionError("socat did not listen")


def _node(ca_pki: Pki, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "node",
            str(PEERS / "node_echo_server.js"),
            str(ca_pki.server.cert),
            str(ca_pki.server.key),
            mode,
        ],
        stdout=subprocess.PIPE,
    )


def _bench_node(ca_pki: Pki, mode: str, *args: str) -> tuple[int, dict[str, object]]:
    proc = _node(ca_pki, mode)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    try:
        return bench(port, ca_pki.ca.cert, *args)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.mark.interop
@pytest.mark.slow
def test_bench_passes_against_node(ca_pki: Pki) -> None:
    """The control for the cases below: node's correct echo passes."""
    for scenario in ("pingpong", "connect", "stream"):
        rc, r = _bench_node(ca_pki, "echo", "--scenario", scenario, "-c", "2")
        assert rc == 0, r


@pytest.mark.interop
@pytest.mark.parametrize("scenario", ["pingpong", "connect"])
@pytest.mark.parametrize("mode", ["corrupt", "duplicate"])
def test_bench_fails_on_a_wrong_echo(ca_pki: Pki, mode: str, scenario: str) -> None:
    """Against node's TLS echo server that flips or repeats a byte, the run fails."""
    rc, r = _bench_node(ca_pki, mode, "--scenario", scenario, "-c", "1")
    assert rc == 1
    assert r["ok"] is False
    assert _int(r, "mismatched_bytes") > 0


@pytest.mark.interop
def test_bench_fails_on_a_dropped_byte(ca_pki: Pki) -> None:
    # pingpong: the echo never completes, so the connection times out.
    rc, r = _bench_node(ca_pki, "drop", "-c", "1", "--timeout", "0.5")
    assert rc == 1
    assert r["errors"] == {"timeout": 1}
    # connect: the server closes with a byte missing.
    rc, r = _bench_node(ca_pki, "drop", "-c", "1", "--scenario", "connect")
    assert rc == 1
    assert "short echo" in r["errors"]  # type: ignore[operator]


@pytest.mark.interop
@pytest.mark.slow
def test_open_loop_sees_a_stall_that_closed_loop_hides(ca_pki: Pki) -> None:
    """Coordinated omission: the server stalls for one second once. Closed
    loop, only the one waiting message is slow; open loop, every message due
    during the stall counts from when it was due."""
    common = ("-c", "1", "-d", "3", "--warmup", "0")
    rc, closed = _bench_node(ca_pki, "stall", *common)
    assert rc == 0, closed
    rc, opened = _bench_node(ca_pki, "stall", *common, "--rate", "200")
    assert rc == 0, opened
    assert _lat(closed)["max"] >= 900_000 and _lat(opened)["max"] >= 900_000
    assert _lat(closed)["p90"] < 50_000  # one slow message in thousands
    # A third of the run's messages were due during the stall.
    assert _lat(opened)["p90"] >= 300_000
    assert _int(opened, "late") >= 150


@pytest.mark.slow
def test_bench_compare_and_plot(bench_server: ServerProcess, ca_pki: Pki, tmp_path: Path) -> None:
    a, b, png = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "plot.png"
    base = [*TLSECHO, "bench", "--port", str(bench_server.port), "--cafile", str(ca_pki.ca.cert)]
    base += ["-d", "1", "--warmup", "0", "-c", "2"]
    subprocess.run([*base, "--json", str(a)], check=True, capture_output=True, timeout=60)
    p = subprocess.run(
        [*base, "-c", "4", "--json", str(b), "--plot", str(png)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "latency µs" in p.stdout  # the table still printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    p = subprocess.run(
        [*TLSECHO, "bench", "--compare", str(a), str(b)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ratio = rb["operations_per_second"] / ra["operations_per_second"]
    assert f"{ratio:.2f}x" in p.stdout
    bad = subprocess.run(
        [*TLSECHO, "bench", "--compare", str(a), str(png)], capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert "plot.png" in bad.stderr and "Traceback" not in bad.stderr


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_stream_plot_is_throughput_alone(
    bench_server: ServerProcess, ca_pki: Pki, tmp_path: Path
) -> None:
    base = [*TLSECHO, "bench", "--port", str(bench_server.port), "--cafile", str(ca_pki.ca.cert)]
    base += ["-d", "1", "--warmup", "0", "-c", "2"]
    both, stream = tmp_path / "pingpong.png", tmp_path / "stream.png"
    subprocess.run([*base, "--plot", str(both)], check=True, capture_output=True, timeout=60)
    cmd = [*base, "--scenario", "stream", "--plot", str(stream)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    # Two panels (latency, throughput) for pingpong; one (MB/s) for a stream,
    # which has no per-message latency to draw.
    assert png_size(both)[0] > 1.5 * png_size(stream)[0]


def test_bench_reports_a_refused_connection(ca_pki: Pki) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    rc, r = bench(port, ca_pki.ca.cert, "-c", "1", "--scenario", "connect")
    assert rc == 1
    assert "econnrefused" in r["errors"]  # type: ignore[operator]


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
