"""The load generator's scenarios, processes and results."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import platform
import queue
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tlsecho.bench.engine import Stats, Worker, WorkerSpec
from tlsecho.bench.histogram import Histogram
from tlsecho.bench.http import default_path
from tlsecho.bench.slots import make_slot
from tlsecho.config import ClientConfig
from tlsecho.errors import ConfigError, TlsEchoError, setting
from tlsecho.tls import client_context
from tlsecho.wire.framing import ECHO_MODES

__all__ = ["BenchConfig", "BenchResult", "run_bench"]

Scenario = Literal["pingpong", "stream", "connect", "http"]


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run."""

    client: ClientConfig = field(default_factory=ClientConfig)
    """Where to connect, what to trust and present, and the server's framing
    (``nul``, ``line`` or ``raw``): the same options as ``tlsecho send``."""
    scenario: Scenario = "pingpong"
    """``pingpong``: one message at a time per connection, latency per message;
    ``stream``: continuous data, throughput; ``connect``: a new TLS connection
    per message (the original client), latency per connection; ``http``:
    keep-alive HTTPS requests (``serve --mode http``), latency per request,
    HTTP/2 with ``alpn`` h2."""
    connections: int = 16
    """Concurrent connections, over all processes."""
    size: int = 64
    """Message size in bytes (pingpong, connect), chunk size (stream)."""
    duration: float = 5.0
    """Seconds measured, after the warm-up. The run stops by itself."""
    count: int | None = None
    """Messages (or connections) to send in all, instead of a duration; no
    warm-up. The run still stops after ``duration`` seconds at most."""
    rate: float | None = None
    """Open loop: messages (connections) per second in all, each sent when it is
    due and timed from then, so a stall cannot hide (no coordinated omission).
    ``None``: closed loop, the next message as soon as the echo is in."""
    warmup: float = 1.0
    """Seconds run before measuring."""
    processes: int = 1
    """Client processes."""
    resume: bool = False
    """connect: resume each slot's previous TLS session."""
    resume_ratio: float | None = None
    """connect: the share of handshakes that offer the previous session
    (0 to 1; ``resume`` is 1)."""
    timeout: float = 10.0
    """Seconds without progress before a connection counts as timed out."""
    path: str | None = None
    """Scenario http: the path requested (default ``/bytes/SIZE?seed=1``,
    whose body is known; another path's first answer is the reference)."""

    def __post_init__(self) -> None:
        if self.scenario not in ("pingpong", "stream", "connect", "http"):
            raise ConfigError(f"unknown scenario {self.scenario!r}")
        if self.path is not None and (self.scenario != "http" or not self.path.startswith("/")):
            raise ConfigError(f"{setting('path')} is scenario http's, and starts with /")
        if self.scenario != "http" and self.client.mode not in ECHO_MODES:
            raise ConfigError(f"{setting('mode')} {self.client.mode}: bench measures an echo")
        if self.connections < 1 or self.processes < 1:
            raise ConfigError(
                f"{setting('connections')} and {setting('processes')} must be at least 1"
            )
        if self.processes > self.connections:
            raise ConfigError(f"{setting('processes')} cannot exceed {setting('connections')}")
        if self.size < 1:
            raise ConfigError(f"{setting('size')} must be at least 1")
        if self.client.mode == "line" and self.size < 2:
            raise ConfigError(f"{setting('size')} must be at least 2 in line mode")
        if not self.duration > 0 or self.warmup < 0:
            raise ConfigError(
                f"{setting('duration')} must be positive and {setting('warmup')} not negative"
            )
        if self.count is not None and self.count < 1:
            raise ConfigError(f"{setting('count')} must be at least 1")
        if self.rate is not None:
            if not self.rate > 0:
                raise ConfigError(f"{setting('rate')} must be positive")
            if self.scenario == "stream":
                raise ConfigError(f"{setting('rate')} applies to pingpong and connect, not stream")
            if self.count is None and self.rate * self.duration < self.connections:
                # Each connection's first message is due at a random moment
                # in its own interval: fewer than one per connection over the
                # run would measure next to nothing.
                raise ConfigError(
                    f"{setting('rate')} {self.rate:g} for {self.duration:g} s is under one "
                    f"message per connection ({self.connections}): raise {setting('rate')} "
                    f"or {setting('duration')}, or lower {setting('connections')}"
                )
        _check_resume(self)
        if not self.timeout > 0:
            raise ConfigError(f"{setting('timeout')} must be positive")


def _check_resume(cfg: BenchConfig) -> None:
    """--resume and --resume-ratio: the connect scenario's, one or the other."""
    if cfg.resume and cfg.scenario != "connect":
        raise ConfigError(f"{setting('resume')} applies to the connect scenario")
    if cfg.resume_ratio is not None:
        if not 0 <= cfg.resume_ratio <= 1:
            raise ConfigError(
                f"{setting('resume_ratio')} is a share, 0 to 1, not {cfg.resume_ratio:g}"
            )
        if cfg.scenario != "connect":
            raise ConfigError(f"{setting('resume_ratio')} applies to the connect scenario")
        if cfg.resume:
            raise ConfigError(
                f"{setting('resume')} is {setting('resume_ratio')} 1: give one of them"
            )


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
    handshake: Histogram = field(default_factory=Histogram)
    resumed: int = 0
    """connect: handshakes that resumed a session."""
    connections_made: int = 0
    """TLS connections completed in the measured period."""
    phases: dict[str, dict[str, Histogram]] = field(default_factory=dict)
    """Per kind of handshake (``TLSv1.3 full``, ``TLSv1.3 resumed``): TCP
    connect, TLS handshake and first echo byte times."""
    late: int = 0
    """Open loop: operations sent more than one interval after they were due
    (the client or the server could not keep the rate)."""
    timeline: list[int] = field(default_factory=list)
    """Operations completed in each second of the measured period."""
    interrupted: bool = False
    """Stopped early (Ctrl-C): the figures cover the time measured until then."""

    @property
    def ok(self) -> bool:
        """No error, no wrong byte, and something was measured."""
        return not self.errors and not self.mismatched_bytes and self.operations > 0

    def merge(self, part: dict[str, Any]) -> None:
        """Add one process's measurements (histograms merge exactly)."""
        self.latency.merge(Histogram.from_dict(part["latency"]))
        self.handshake.merge(Histogram.from_dict(part["handshake"]))
        self.operations += part["ops"]
        self.bytes_verified += part["bytes"]
        self.mismatched_bytes += part["mismatched"]
        self.resumed += part["resumed"]
        self.connections_made += part["connections_made"]
        for key, kinds in part["phases"].items():
            mine = self.phases.setdefault(key, {})
            for name, h in kinds.items():
                mine.setdefault(name, Histogram()).merge(Histogram.from_dict(h))
        self.late += part["late"]
        self.seconds = max(self.seconds, part["seconds"])
        self.interrupted = self.interrupted or part["interrupted"]
        for k, v in part["errors"].items():
            self.errors[k] = self.errors.get(k, 0) + v
        for i, n in enumerate(part["timeline"]):
            if i < len(self.timeline):
                self.timeline[i] += n
            else:
                self.timeline.append(n)

    def as_dict(self) -> dict[str, Any]:
        cfg = self.config
        out: dict[str, Any] = {
            "scenario": cfg.scenario,
            "connections": cfg.connections,
            "processes": cfg.processes,
            "size": cfg.size,
            "mode": cfg.client.mode,
            "rate": cfg.rate,
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
            "latency_us": _percentiles(self.latency),
            "ok": self.ok,
            "interrupted": self.interrupted,
        }
        if cfg.scenario == "http":
            out["mode"] = "http/2" if cfg.client.alpn[:1] == ("h2",) else "http/1.1"
            out["path"] = cfg.path or default_path(cfg.size)
        if cfg.scenario == "connect":
            out["handshake_us"] = _percentiles(self.handshake)
            out["resumed"] = self.resumed
            out["connections_made"] = self.connections_made
            out["phases_us"] = {
                key: {
                    "count": kinds["tls_handshake"].total,
                    **{name: _percentiles(h) for name, h in kinds.items()},
                }
                for key, kinds in sorted(self.phases.items())
            }
        if cfg.rate is not None:
            out["late"] = self.late
        out["timeline_ops_per_second"] = self.timeline
        out["config"] = _config_dict(cfg)
        out["environment"] = environment()
        return out


def _percentiles(h: Histogram) -> dict[str, float]:
    if not h.total:
        return {}
    return {
        name: round(h.percentile(p) / 1000, 1)
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100))
    }


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        return str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v

    d = {k: plain(v) for k, v in dataclasses.asdict(cfg).items() if k != "client"}
    d["client"] = {k: plain(v) for k, v in dataclasses.asdict(cfg.client).items()}
    return d


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "openssl": ssl.OPENSSL_VERSION,
        "client_engine": "epoll + TLS over memory BIOs (ssl.SSLObject)",
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "tlsecho": _version(),
    }


def _version() -> str:
    from tlsecho._version import __version__

    return __version__


def _split(total: int, parts: int) -> list[int]:
    share = [total // parts] * parts
    for i in range(total % parts):
        share[i] += 1
    return share


def _spec(cfg: BenchConfig, conns: int, count: int | None, index: int) -> WorkerSpec:
    c = cfg.client
    infos = socket.getaddrinfo(c.host, c.port, type=socket.SOCK_STREAM)
    if not infos:
        raise ConfigError(f"no address for {c.host}")
    family, _, _, _, address = infos[0]
    return WorkerSpec(
        scenario=cfg.scenario,
        mode=c.mode,
        address=tuple(address),
        family=family,
        server_hostname=c.verify_name,
        connections=conns,
        size=cfg.size,
        rate=cfg.rate * conns / cfg.connections if cfg.rate else None,
        count=count,
        resume=cfg.resume or bool(cfg.resume_ratio),
        resume_ratio=1.0 if cfg.resume else (cfg.resume_ratio or 0.0),
        timeout=cfg.timeout,
        proxy_header=c.proxy_header,
        seed=index * 7919 + 1,
        http_path=cfg.path or default_path(cfg.size),
        http_host=c.verify_name or c.host,
        alpn=c.alpn[0] if c.alpn else "",
    )


def _worker(
    cfg: BenchConfig,
    conns: int,
    count: int | None,
    index: int,
    out: Any,
    start: float,
    stop: Any,
) -> None:
    """One client process: wait for the common start, run, report. SIGINT is
    ignored (the parent turns the first Ctrl-C into ``stop``, an Event)."""
    try:
        ctx = client_context(cfg.client)
        if cfg.scenario == "http" and not cfg.client.alpn:
            ctx.set_alpn_protocols(["http/1.1"])
        spec = _spec(cfg, conns, count, index)
    except (TlsEchoError, OSError) as exc:
        out.put(("error", index, str(exc)))
        return
    # Everyone starts together: the processes' windows line up.
    delay = start - time.time()
    if delay > 0:
        time.sleep(delay)
    now = time.perf_counter_ns()
    warmup = 0 if cfg.count is not None else int(cfg.warmup * 1e9)
    measure_from = now + warmup
    stop_at = measure_from + int(cfg.duration * 1e9)
    last = [0.0]

    def progress(stats: Stats) -> None:
        t = time.monotonic()
        if t - last[0] >= 0.5:
            last[0] = t
            p99 = stats.latency.percentile(99) / 1000
            errors = sum(stats.errors.values())
            out.put(("progress", index, stats.ops, errors, stats.mismatched, p99))

    worker = Worker(spec, ctx, measure_from, stop_at, make_slot, progress, stop.is_set)
    out.put(("done", index, worker.run().as_dict()))


def run_bench(
    cfg: BenchConfig, on_progress: Callable[[int, int, int, float], None] | None = None
) -> BenchResult:
    """Run the benchmark in ``cfg.processes`` processes; return the totals.

    ``on_progress(operations, errors, wrong_bytes, p99_us)`` is called about
    twice a second with the totals so far (measured period only; the p99 is
    the worst process's).

    Raises:
        ConfigError: a client process could not start (bad address, CA file...).
    """
    share = _split(cfg.connections, cfg.processes)
    counts: list[int | None] = (
        [None] * cfg.processes if cfg.count is None else list(_split(cfg.count, cfg.processes))
    )
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    stop = mp.Event()
    start = time.time() + 0.3 + 0.1 * cfg.processes  # the spawns import the package
    procs = [
        mp.Process(target=_worker, args=(cfg, n, counts[i], i, out, start, stop))
        for i, n in enumerate(share)
    ]
    # Ctrl-C reaches the whole process group. The workers start with SIGINT
    # ignored (inherited through exec, and Python keeps it so); here the first
    # one stops the load and keeps what was measured, a second one gives up.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for p in procs:
            p.start()
    finally:
        signal.signal(signal.SIGINT, previous)

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result, failure = _collect(cfg, procs, out, on_progress)
    except BaseException:
        for p in procs:
            p.kill()
            p.join()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if failure is not None:
        raise ConfigError(failure)
    if cfg.count is None and not result.interrupted:
        result.seconds = cfg.duration
    return result


def _collect(
    cfg: BenchConfig,
    procs: list[Any],
    out: Any,
    on_progress: Callable[[int, int, int, float], None] | None,
) -> tuple[BenchResult, str | None]:
    """Read the workers' reports until each has said it is done."""
    result = BenchResult(cfg)
    progress: dict[int, tuple[Any, ...]] = {}
    deadline = time.monotonic() + cfg.warmup + cfg.duration + cfg.timeout + 60
    done = 0
    failure = None
    while done < len(procs):
        try:
            msg = out.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            result.errors["client process hung"] = len(procs) - done
            break
        kind, index = msg[0], msg[1]
        if kind == "progress":
            progress[index] = msg[2:]
            if on_progress is not None:
                ops, errors, wrong = (sum(p[i] for p in progress.values()) for i in range(3))
                on_progress(ops, errors, wrong, max(p[3] for p in progress.values()))
        elif kind == "done":
            result.merge(msg[2])
            done += 1
        else:
            failure = msg[2]
            done += 1
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
        elif p.exitcode:
            result.errors["client process died"] = result.errors.get("client process died", 0) + 1
    return result, failure
