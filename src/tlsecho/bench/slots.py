"""Which connection class each ``--scenario`` runs."""

from __future__ import annotations

from tlsecho.bench.engine import Slot, Worker
from tlsecho.bench.http import Http1, Http2
from tlsecho.bench.scenarios import Connect, Pingpong, Stream
from tlsecho.bench.tlsbio import BioConnection

__all__ = ["SCENARIOS", "make_slot"]

#: The slot class of each ``--scenario`` (``http``: by the ALPN the
#: connection will negotiate, see :func:`make_slot`).
SCENARIOS: dict[str, type[BioConnection]] = {
    "pingpong": Pingpong,
    "connect": Connect,
    "stream": Stream,
    "http": Http1,
}


def make_slot(worker: Worker) -> Slot:
    """A connection slot of the worker's scenario."""
    if worker.spec.scenario == "http" and worker.spec.alpn == "h2":
        return Http2(worker)
    return SCENARIOS[worker.spec.scenario](worker)
