"""The server: ``EchoServer`` and ``serve()`` (``core``), the connection's
record and states (``connection``), the engines (``engines/``), listening
sockets (``net``), identity policy (``identity``), ``--mode hello``'s answer
(``answer``), metrics, worker processes, signals (``run``) and groups of
servers (``group``).

``from tlsecho.server import EchoServer, serve`` keeps working (loaded on
first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlsecho.server.core import EchoServer, serve

__all__ = ["EchoServer", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tlsecho.server.core"), name)
    raise AttributeError(f"module 'tlsecho.server' has no attribute {name!r}")
