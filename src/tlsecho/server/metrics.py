"""Prometheus metrics for ``tlsecho serve --metrics HOST:PORT``.

Every metric is prefixed ``tlsecho_``. They are updated once per handshake
and once per finished connection, never per chunk, so the echo's hot path
does not pay for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from tlsecho.server.connection import ConnectionRecord, Outcome

__all__ = ["Metrics"]

#: JA4 labels kept apart: the first this many distinct values seen get a label
#: of their own, later ones count as ``other`` (a scanner that sends a
#: thousand different ClientHellos cannot blow up the series).
JA4_LABELS = 100
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 3600)
_HANDSHAKE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 10)


class Metrics:
    """The server's metrics, in a registry of their own.

    Args:
        active: returns the number of open connections, read at scrape time.
    """

    def __init__(self, active: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # With --workers, every worker writes its values to files in
        # PROMETHEUS_MULTIPROC_DIR and the supervisor adds them up.
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.active = Gauge(
            "tlsecho_connections_active",
            "Connections open now (handshaking included)",
            registry=r,
            multiprocess_mode="livesum",
        )
        if not self.multiprocess:
            self.active.set_function(lambda: float(active()))
        self.connections = Counter(
            "tlsecho_connections", "Finished connections by how they ended", ["outcome"], registry=r
        )
        self.handshakes = Counter(
            "tlsecho_handshakes", "Completed TLS handshakes", ["tls_version", "cipher"], registry=r
        )
        self.handshake_failures = Counter(
            "tlsecho_handshake_failures", "Failed TLS handshakes by reason", ["reason"], registry=r
        )
        self.bytes_in = Counter(
            "tlsecho_received_bytes", "Application bytes received from clients", registry=r
        )
        self.bytes_out = Counter("tlsecho_sent_bytes", "Application bytes echoed", registry=r)
        self.session_duration = Histogram(
            "tlsecho_session_duration_seconds",
            "Connection lifetime, accept to close",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.handshake_duration = Histogram(
            "tlsecho_handshake_duration_seconds",
            "Accept to handshake done (a PROXY header included)",
            buckets=_HANDSHAKE_BUCKETS,
            registry=r,
        )
        self.framing_errors = Counter(
            "tlsecho_framing_errors",
            "Sessions ended by a framing error (line too long)",
            registry=r,
        )
        self.proxy_errors = Counter(
            "tlsecho_proxy_errors", "Connections dropped for a bad PROXY header", registry=r
        )
        self.client_hellos = Counter(
            "tlsecho_client_hellos",
            f"ClientHellos read (--fingerprint) by JA4; the first {JA4_LABELS} distinct "
            "values have a label, later ones are 'other'",
            ["ja4"],
            registry=r,
        )
        self._ja4_seen: set[str] = set()
        self.faults = Counter(
            "tlsecho_faults", "--fault faults that fired, by fault", ["fault"], registry=r
        )
        self.http_requests = Counter(
            "tlsecho_http_requests",
            "--mode http: requests answered, by status and HTTP version",
            ["status", "http_version"],
            registry=r,
        )
        self.internal_errors = Counter(
            "tlsecho_internal_errors",
            "Connections ended by a fault of ours (an unexpected exception): each "
            "ended at once, never echoed, never admitted past a policy check",
            registry=r,
        )
        self.reloads = Counter(
            "tlsecho_reloads", "Certificate reloads by result", ["result"], registry=r
        )

    def http_request(self, status: int, version: str) -> None:
        """A request answered (mode ``http``)."""
        self.http_requests.labels(str(status), version).inc()

    def connection_opened(self) -> None:
        """A connection was accepted (multiprocess mode counts it here)."""
        if self.multiprocess:
            self.active.inc()

    def connection_closed(self) -> None:
        """A connection ended."""
        if self.multiprocess:
            self.active.dec()

    def handshake_done(self, version: str, cipher: str, seconds: float) -> None:
        """Record a completed handshake."""
        self.handshakes.labels(version, cipher).inc()
        self.handshake_duration.observe(seconds)

    def connection_done(self, record: ConnectionRecord) -> None:
        """Record a finished connection."""
        outcome = record.outcome
        self.connections.labels(str(outcome)).inc()
        self.bytes_in.inc(record.bytes_in)
        self.bytes_out.inc(record.bytes_out)
        self.session_duration.observe(record.duration_s)
        if outcome is Outcome.HANDSHAKE_FAILED:
            self.handshake_failures.labels(record.reason or "closed").inc()
        elif outcome is Outcome.FRAMING_ERROR:
            self.framing_errors.inc()
        elif outcome is Outcome.PROXY_ERROR:
            self.proxy_errors.inc()
        elif outcome is Outcome.INTERNAL_ERROR:
            self.internal_errors.inc()
        if record.hello is not None:
            self.client_hellos.labels(self._ja4_label(record.ja4)).inc()
        if record.fault is not None:
            self.faults.labels(record.fault).inc()

    def _ja4_label(self, ja4: str | None) -> str:
        if ja4 is None:
            return "malformed"
        if ja4 not in self._ja4_seen:
            if len(self._ja4_seen) >= JA4_LABELS:
                return "other"
            self._ja4_seen.add(ja4)
        return ja4

    def reload(self, ok: bool) -> None:
        """Record a reload attempt."""
        self.reloads.labels("ok" if ok else "failed").inc()

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Expose ``/metrics`` over HTTP on ``host:port`` (0: a free port) in
        a daemon thread; return the bound address."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = server.server_address
        return str(bound[0]), int(bound[1])


def serve_multiprocess(host: str, port: int, directory: str) -> tuple[str, int]:
    """Expose the sum of every worker's metrics (files in ``directory``)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address
    return str(bound[0]), int(bound[1])
