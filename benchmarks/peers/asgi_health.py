"""The ASGI app the HTTP rows run on uvicorn and hypercorn: the same small
JSON, byte for byte, as ``tlsecho serve --mode http`` answers on /health."""

from __future__ import annotations

from typing import Any

BODY = b'{\n  "status": "ok"\n}\n'
HEADERS = [
    (b"server", b"asgi"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
