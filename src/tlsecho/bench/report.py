"""What ``tlsecho bench`` shows: the live line, the final table, ``--compare``
ratios and the ``--plot`` picture."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from tlsecho.errors import ConfigError, setting

__all__ = ["Progress", "compare", "plot", "render"]


class Progress:
    """A one-line live display on a terminal (rich): elapsed, rate, errors."""

    def __init__(self, stream: TextIO, measured_after: float) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream, emoji=False)
        self._live = Live("starting", console=self._console, transient=True, auto_refresh=False)
        self._t0 = time.monotonic()
        self._measured_after = measured_after
        self._last = (self._t0, 0)

    def __enter__(self) -> Progress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def update(self, ops: int, errors: int, wrong: int, p99_us: float) -> None:
        now = time.monotonic()
        t_prev, ops_prev = self._last
        rate = (ops - ops_prev) / (now - t_prev) if now > t_prev else 0.0
        self._last = (now, ops)
        elapsed = now - self._t0
        phase = "warm-up" if elapsed < self._measured_after else "measuring"
        style = "bold red" if errors or wrong else "green"
        self._live.update(
            f"[dim]{elapsed:6.1f} s {phase}[/]  {ops:>10,} ops  {rate:>10,.0f}/s  "
            f"p99 {p99_us:,.0f} µs  [{style}]errors {errors}  wrong bytes {wrong}[/]",
            refresh=True,
        )


def render(r: dict[str, Any], stream: TextIO) -> None:
    """The final table."""
    from rich.console import Console
    from rich.table import Table

    what = f"{r['mode']} GET {r['path']}" if r.get("path") else f"{r['size']} B, mode {r['mode']}"
    title = (
        f"{r['scenario']}: {r['connections']} connections, {what}, "
        f"{r['processes']} process(es), {r['seconds']} s"
        + (f", open loop at {r['rate']:,.4g}/s" if r.get("rate") else ", closed loop")
        + (", interrupted" if r.get("interrupted") else "")
    )
    t = Table(show_header=False)
    t.add_column(style="bold")
    t.add_column()
    unit = {"connect": "connections", "stream": "chunks", "http": "requests"}.get(
        r["scenario"], "messages"
    )
    t.add_row("operations", f"{r['operations']:,} {unit} ({r['operations_per_second']:,.1f}/s)")
    t.add_row(
        "verified",
        f"{r['bytes_verified']:,} bytes ({r['megabytes_per_second']:,.2f} MB/s), "
        f"{r['mismatched_bytes']} wrong",
    )
    for key, label in (("latency_us", "latency µs"), ("handshake_us", "handshake µs")):
        lat = r.get(key)
        if lat:
            t.add_row(label, "  ".join(f"{k} {v:,.1f}" for k, v in lat.items()))
    if "resumed" in r:
        t.add_row("resumed", f"{r['resumed']:,} handshakes" + _made(r))
    for key, phases in (r.get("phases_us") or {}).items():
        parts = [
            f"{label} p50 {phases[name]['p50']:,.0f} p99 {phases[name]['p99']:,.0f}"
            for name, label in (
                ("tcp_connect", "TCP"),
                ("tls_handshake", "TLS"),
                ("first_byte", "first byte"),
            )
            if phases.get(name)
        ]
        t.add_row(f"{key} ({phases['count']:,})", " | ".join(parts) + " µs")
    if "late" in r:
        t.add_row("sent late", f"{r['late']:,} (more than one interval after they were due)")
    errors = r["errors"]
    t.add_row("errors", ", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "none")
    console = Console(file=stream, width=110, emoji=False, markup=False)
    console.print(title, highlight=False)
    console.print(t)


_COMPARED = (("operations_per_second", "operations/s"), ("megabytes_per_second", "MB/s"))


def _made(r: dict[str, Any]) -> str:
    """`` of N connections made``, and why N is more than the operations
    counted (a connection whose message the end of the run cut off is made,
    not counted: "2,113 connections" and "of 2,114 made" read as a mistake)."""
    made = r.get("connections_made")
    if not made:
        return ""
    cut = made - r["operations"] if r["scenario"] == "connect" else 0
    return f" of {made:,} connections made" + (
        f" ({cut:,} cut off by the end of the run, not counted above)" if cut > 0 else ""
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or "operations_per_second" not in data:
        raise ConfigError(f"{path} is not a 'tlsecho bench --json' result")
    return data


def compare(a_path: Path, b_path: Path, stream: TextIO) -> None:
    """Print B against A: each figure and B/A."""
    from rich.console import Console
    from rich.table import Table

    a, b = _load(a_path), _load(b_path)
    t = Table(title=f"B = {b_path}  against  A = {a_path}", title_justify="left")
    for col in ("figure", "A", "B", "B / A"):
        t.add_column(col, justify="left" if col == "figure" else "right")

    def row(name: str, va: float | None, vb: float | None, note: str) -> None:
        if va is None or vb is None:
            return
        ratio = f"{vb / va:.2f}x" if va else "-"
        t.add_row(name, f"{va:,.1f}", f"{vb:,.1f}", f"{ratio} {note}")

    for key, name in _COMPARED:
        row(name, a.get(key), b.get(key), "(higher is better)")
    for group in ("latency_us", "handshake_us"):
        la, lb = a.get(group) or {}, b.get(group) or {}
        for p in ("p50", "p90", "p99", "p99.9", "max"):
            row(f"{group.split('_')[0]} {p} µs", la.get(p), lb.get(p), "(lower is better)")
    for key in ("mismatched_bytes",):
        t.add_row("wrong bytes", str(a.get(key)), str(b.get(key)), "")
    t.add_row("errors", str(sum(a["errors"].values())), str(sum(b["errors"].values())), "")
    Console(file=stream, width=110, emoji=False, markup=False).print(t)
    if (a.get("scenario"), a.get("size")) != (b.get("scenario"), b.get("size")):
        stream.write("note: B ran a different scenario or size\n")


def plot(r: dict[str, Any], latency_points: list[tuple[float, float]], path: Path) -> None:
    """Latency against percentile (log scale of 1/(1-p), as HdrHistogram plots
    it), and operations per second over the measured time; for a stream, MB/s
    over time alone (a stream has no per-message latency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            f"{setting('plot')} needs matplotlib: pip install 'tlsecho[plot]'"
        ) from None
    tl = r.get("timeline_ops_per_second") or []
    if r["scenario"] == "stream":
        # No per-message latency in a stream: its one picture is MB/s.
        fig, ax2 = plt.subplots(1, 1, figsize=(6, 4))
        ax2.plot(range(1, len(tl) + 1), [n * r["size"] / 1e6 for n in tl], marker=".")
        ax2.set_ylabel("MB/s (echo verified)")
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        if latency_points:
            xs = [1 / (1 - p / 100) for p, _ in latency_points]
            ax1.plot(xs, [v for _, v in latency_points], marker=".")
            ax1.set_xscale("log")
            ticks = [1, 10, 100, 1000, 10000]
            ax1.set_xticks(ticks, ["0%", "90%", "99%", "99.9%", "99.99%"])
        ax1.set_xlabel("percentile")
        ax1.set_ylabel("latency (µs)")
        ax1.set_title("latency by percentile")
        ax1.grid(True, which="both", alpha=0.3)
        ax2.plot(range(1, len(tl) + 1), tl, marker=".")
        ax2.set_ylabel("operations per second")
    ax2.set_xlabel("second")
    ax2.set_title("throughput over time")
    ax2.set_ylim(bottom=0)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"tlsecho bench {r['scenario']}, {r['connections']} conns, {r['size']} B")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
