"""Bad endpoints: the lab's catalogue, manifest and start (``endpoints``),
the certificates only the lab makes (``certs``) and ``tlsecho badssl``'s
set (``badssl``).

``from tlsecho.lab import catalog, start_lab, ...`` keeps working: any name
of :mod:`tlsecho.lab.endpoints` (loaded on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlsecho.lab.endpoints import (
        MESSAGE,
        REJECTS,
        LabEntry,
        catalog,
        lab_configs,
        manifest,
        render,
        start_lab,
        write_lab_pki,
    )

__all__ = [
    "MESSAGE",
    "REJECTS",
    "LabEntry",
    "catalog",
    "lab_configs",
    "manifest",
    "render",
    "start_lab",
    "write_lab_pki",
]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("tlsecho.lab.endpoints"), name)
    except AttributeError:
        raise AttributeError(f"module 'tlsecho.lab' has no attribute {name!r}") from None
