"""The clients: the echo client (``echo``: ``EchoClient``, ``send``),
``probe`` and the one-line errors both give (``errors``).

``from tlsecho.client import EchoClient, EchoResult, send`` keeps working
(loaded on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlsecho.client.echo import EchoClient, EchoResult, send

__all__ = ["EchoClient", "EchoResult", "send"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tlsecho.client.echo"), name)
    raise AttributeError(f"module 'tlsecho.client' has no attribute {name!r}")
