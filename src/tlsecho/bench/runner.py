"""The load generator's scenarios, processes and results."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tlsecho.bench.histogram import Histogram
from tlsecho.errors import ConfigError

__all__ = ["BenchConfig", "BenchResult", "run_bench"]

Scenario = Literal["pingpong", "stream", "connect"]
_STREAM_WINDOW = 256 * 1024  # bytes in flight per stream connection


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    host: str = "localhost"
    port: int = 10000
    scenario: Scenario = "pingpong"
    """``pingpong``: one message at a time per connection, latency per message;
    ``stream``: continuous data, throughput; ``connect``: a new TLS connection
    per message (the original client), latency per connection."""
    connections: int = 16
    """Concurrent connections, over all processes."""
    size: int = 64
    """Message size in bytes (pingpong, connect), chunk size (stream)."""
    duration: float = 5.0
    """Seconds measured, after the warm-up. The run stops by itself."""
    warmup: float = 1.0
    """Seconds run before measuring."""
    processes: int = 1
    """Client processes."""
    cafile: Path | None = None
    insecure: bool = False
    server_hostname: str | None = None
    loop: str = "asyncio"
    """The clients' event loop: ``asyncio`` (default), ``uvloop`` or ``auto``. The
    stdlib loop by default: with uvloop 0.23 as a client, the last record before
    close_notify was lost about once in 40 runs of 4 x 350 MB streams, while the
    server had handed every byte to OpenSSL (see BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        if self.scenario not in ("pingpong", "stream", "connect"):
            raise ConfigError(f"unknown scenario {self.scenario!r}")
        if self.connections < 1 or self.processes < 1:
            raise ConfigError("--connections and --processes must be at least 1")
        if self.processes > self.connections:
            raise ConfigError("--processes cannot exceed --connections")
        if self.size < 1:
            raise ConfigError("--size must be at least 1")
        if not self.duration > 0 or self.warmup < 0:
            raise ConfigError("--duration must be positive and --warmup not negative")


@dataclass
class BenchResult:
    """Totals over every process, for the measured period only."""

    config: BenchConfig
    operations: int = 0
    """Messages (pingpong), connections (connect) or chunks (stream) verified."""
    bytes_verified: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    mismatched_bytes: int = 0
    seconds: float = 0.0
    latency: Histogram = field(default_factory=Histogram)

    @property
    def ok(self) -> bool:
        """No error, no wrong byte, and something was measured."""
        return not self.errors and not self.mismatched_bytes and self.operations > 0

    def as_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "scenario": self.config.scenario,
            "connections": self.config.connections,
            "processes": self.config.processes,
            "size": self.config.size,
            "seconds": round(self.seconds, 3),
            "operations": self.operations,
            "operations_per_second": round(self.operations / self.seconds, 1)
            if self.seconds
            else 0,
            "bytes_verified": self.bytes_verified,
            "megabytes_per_second": round(self.bytes_verified / self.seconds / 1e6, 2)
            if self.seconds
            else 0,
            "mismatched_bytes": self.mismatched_bytes,
            "errors": self.errors,
            "latency_us": {
                name: round(lat.percentile(p) / 1000, 1)
                for name, p in (
                    ("p50", 50),
                    ("p90", 90),
                    ("p99", 99),
                    ("p99.9", 99.9),
                    ("max", 100),
                )
            }
            if lat.total
            else {},
            "ok": self.ok,
        }


def _context(cfg: BenchConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cfg.cafile) if cfg.cafile else None)
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _Shared:
    """One process's measurements."""

    def __init__(self, measure_from: float, stop_at: float) -> None:
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.hist = Histogram()
        self.ops = 0
        self.bytes = 0
        self.mismatched = 0
        self.errors: dict[str, int] = {}

    def measuring(self, now: float) -> bool:
        return self.measure_from <= now < self.stop_at

    def error(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _payload(rng: random.Random, n: int) -> bytes:
    # Random bytes without NUL: the server's nul framing would end the session.
    return bytes(rng.randrange(1, 256) for _ in range(n))


async def _pingpong(cfg: BenchConfig, ctx: ssl.SSLContext, sh: _Shared, seed: int) -> None:
    rng = random.Random(seed)
    pool = _payload(rng, cfg.size * 4 + 1024)
    name = cfg.server_hostname or cfg.host
    reader, writer = await asyncio.open_connection(
        cfg.host, cfg.port, ssl=ctx, server_hostname=name
    )
    clock = time.perf_counter_ns
    try:
        while time.monotonic() < sh.stop_at:
            off = rng.randrange(0, len(pool) - cfg.size)
            msg = pool[off : off + cfg.size]
            t0 = clock()
            writer.write(msg)
            got = await reader.readexactly(cfg.size)
            t1 = clock()
            if sh.measuring(time.monotonic()):
                if got != msg:
                    sh.mismatched += sum(a != b for a, b in zip(got, msg, strict=True))
                sh.hist.record(t1 - t0)
                sh.ops += 1
                sh.bytes += cfg.size
        writer.write(b"\x00")
        if await reader.read(1) != b"":
            sh.mismatched += 1  # nothing may follow the echo
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _stream(cfg: BenchConfig, ctx: ssl.SSLContext, sh: _Shared, seed: int) -> None:
    rng = random.Random(seed)
    chunk = _payload(rng, cfg.size)
    name = cfg.server_hostname or cfg.host
    reader, writer = await asyncio.open_connection(
        cfg.host, cfg.port, ssl=ctx, server_hostname=name
    )
    sent = received = 0
    n = len(chunk)
    target = 1 << 62  # set to the bytes sent once sending stops
    caught_up = asyncio.Event()

    async def read_side() -> None:
        nonlocal received, target
        while True:
            data = await reader.read(262144)
            if not data:
                return
            start = received % n
            expect = (chunk * (len(data) // n + 2))[start : start + len(data)]
            if data != expect:
                sh.mismatched += sum(a != b for a, b in zip(data, expect, strict=True))
            received += len(data)
            if received >= target:
                caught_up.set()
            if sh.measuring(time.monotonic()):
                sh.bytes += len(data)

    reading = asyncio.ensure_future(read_side())
    try:
        while time.monotonic() < sh.stop_at and not reading.done():
            if sent - received < _STREAM_WINDOW:
                writer.write(chunk)
                sent += n
                if sh.measuring(time.monotonic()):
                    sh.ops += 1
                await writer.drain()
            else:
                await asyncio.sleep(0)
        # Wait for the whole echo before ending the session: then a TLS
        # stack that mishandles data arriving with close_notify cannot make
        # a correct server look wrong.
        target = sent
        if received < target:
            waiter = asyncio.ensure_future(caught_up.wait())
            await asyncio.wait({waiter, reading}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        writer.write(b"\x00")
        await asyncio.wait_for(reading, timeout=30)
        if received != sent:
            sh.mismatched += abs(sent - received)
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _connect(cfg: BenchConfig, ctx: ssl.SSLContext, sh: _Shared, seed: int) -> None:
    rng = random.Random(seed)
    name = cfg.server_hostname or cfg.host
    clock = time.perf_counter_ns
    while time.monotonic() < sh.stop_at:
        msg = _payload(rng, cfg.size)
        t0 = clock()
        try:
            reader, writer = await asyncio.open_connection(
                cfg.host, cfg.port, ssl=ctx, server_hostname=name
            )
            writer.write(msg + b"\x00")
            got = await reader.read(-1)
            writer.close()
        except (OSError, asyncio.IncompleteReadError) as exc:
            if sh.measuring(time.monotonic()):
                sh.error(exc)
            continue
        t1 = clock()
        if sh.measuring(time.monotonic()):
            if got != msg:
                sh.mismatched += sum(a != b for a, b in zip(got, msg, strict=False))
                sh.mismatched += abs(len(got) - len(msg))
            sh.hist.record(t1 - t0)
            sh.ops += 1
            sh.bytes += len(msg)


async def _process_main(cfg: BenchConfig, conns: int, index: int) -> dict[str, Any]:
    ctx = _context(cfg)
    now = time.monotonic()
    sh = _Shared(now + cfg.warmup, now + cfg.warmup + cfg.duration)
    run = {"pingpong": _pingpong, "stream": _stream, "connect": _connect}[cfg.scenario]
    tasks = [asyncio.ensure_future(run(cfg, ctx, sh, index * 1000 + i)) for i in range(conns)]
    for t in tasks:
        try:
            await t
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            sh.error(exc)
    return {
        "hist": sh.hist.to_dict(),
        "ops": sh.ops,
        "bytes": sh.bytes,
        "mismatched": sh.mismatched,
        "errors": sh.errors,
    }


def _worker(cfg: BenchConfig, conns: int, index: int, out: Any) -> None:
    from tlsecho.server import new_event_loop_factory

    with asyncio.Runner(loop_factory=new_event_loop_factory(cfg.loop)) as runner:
        out.put(runner.run(_process_main(cfg, conns, index)))


def run_bench(cfg: BenchConfig) -> BenchResult:
    """Run the benchmark in ``cfg.processes`` processes; return the totals."""
    share = [cfg.connections // cfg.processes] * cfg.processes
    for i in range(cfg.connections % cfg.processes):
        share[i] += 1
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(cfg, n, i, out)) for i, n in enumerate(share)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=cfg.warmup + cfg.duration + 120) for _ in procs]
    for p in procs:
        p.join(30)
    result = BenchResult(cfg, seconds=cfg.duration)
    for part in parts:
        result.latency.merge(Histogram.from_dict(part["hist"]))
        result.operations += part["ops"]
        result.bytes_verified += part["bytes"]
        result.mismatched_bytes += part["mismatched"]
        for k, v in part["errors"].items():
            result.errors[k] = result.errors.get(k, 0) + v
    for p in procs:
        if p.exitcode:
            result.errors["client process died"] = result.errors.get("client process died", 0) + 1
    return result
