"""tlsbin's endpoints: one HTTP request in, one response out.

Sans-IO: :func:`respond` turns a complete :class:`Request` and what the
server knows of its connection (a JSON-able mapping: peer, PROXY header,
TLS, ClientHello, server) into a :class:`Response`; the HTTP/1.1 and HTTP/2
sessions (:mod:`tlsecho.tlsbin.h1`, :mod:`tlsecho.tlsbin.h2`) carry the
bytes. Endpoints follow httpbin's and traefik/whoami's vocabulary.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tlsecho.tlsbin.forwarded import parse_forwarded, parse_x_forwarded_for, parse_xfcc
from tlsecho.tlsbin.page import render_page

__all__ = [
    "ENDPOINTS",
    "Health",
    "HttpLimits",
    "Request",
    "Response",
    "echo_document",
    "error_response",
    "respond",
]

#: The paths with a meaning of their own (every other path echoes).
ENDPOINTS = (
    "/status/CODE",
    "/delay/SECONDS",
    "/bytes/N",
    "/stream/N",
    "/headers",
    "/ip",
    "/tls",
    "/hello",
    "/health",
)
_NO_BODY = frozenset({204, 304})
_JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The caps of mode ``http`` (every one bounds memory or time)."""

    max_header: int = 16 * 1024
    """Bytes of request line and headers (431 beyond)."""
    max_body: int = 1024 * 1024
    """Bytes of request body (413 beyond)."""
    request_timeout: float = 10.0
    """Seconds from a request's first byte to its last (408 beyond)."""
    max_delay: float = 10.0
    """Longest ``/delay`` or ``x-set-response-delay-ms``, in seconds."""
    max_bytes: int = 1024 * 1024
    """Largest ``/bytes/N``."""
    max_stream: int = 100
    """Most lines of ``/stream/N``."""


class Health:
    """What ``/health`` answers: flipped by ``POST /health`` or SIGUSR1,
    shared by every connection of a server."""

    __slots__ = ("ok",)

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok

    def flip(self) -> bool:
        """Toggle; the new state."""
        self.ok = not self.ok
        return self.ok


@dataclass(frozen=True, slots=True)
class Request:
    """One complete request."""

    method: str
    target: str
    """The request target as sent (``:path`` on HTTP/2)."""
    headers: tuple[tuple[str, str], ...]
    """In the order received, names as sent (HTTP/2's pseudo-headers
    included)."""
    body: bytes = b""
    http_version: str = "1.1"
    stream_id: int | None = None

    @property
    def path(self) -> str:
        """The target's path (a target without ``?``, ``#`` or a scheme is one)."""
        target = self.target
        if target.startswith("/") and "?" not in target and "#" not in target:
            return target
        return urlsplit(target).path or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        if "?" not in self.target:
            return {}
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (lower case), in order."""
        return [v for k, v in self.headers if k.lower() == name]


@dataclass(slots=True)
class Response:
    """What to send for one request."""

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    """Seconds to hold the response back."""
    chunks: tuple[bytes, ...] | None = None
    """The body in pieces, sent as they are (``/stream/N``); None: ``body``."""
    close: bool = False
    """End the connection after it (a request the server will not read on)."""


def _json(status: int, doc: Any, *, head: bool = False) -> Response:
    body = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
    return _sized(status, _JSON, body, head)


def _sized(status: int, ctype: bytes, body: bytes, head: bool) -> Response:
    headers = [(b"content-type", ctype)]
    if status in _NO_BODY:
        return Response(status, headers)
    headers.append((b"content-length", str(len(body)).encode()))
    return Response(status, headers, b"" if head else body)


def error_response(status: int, message: str) -> Response:
    """A JSON error that ends the connection (a request we cannot read on)."""
    resp = _json(status, {"error": message, "status": status})
    resp.close = True
    return resp


_HEALTH = {
    ok: (r.status, _JSON, r.body)
    for ok, r in ((True, _json(200, {"status": "ok"})), (False, _json(503, {"status": "failing"})))
}


def _body_field(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8"), "body_encoding": "utf-8", "body_bytes": len(body)}
    except UnicodeDecodeError:
        return {
            "body": base64.b64encode(body).decode(),
            "body_encoding": "base64",
            "body_bytes": len(body),
        }


def _proxies(req: Request, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """What arrived (the TCP peer, the PROXY header) next to what proxies said."""
    return {
        "peer": ctx.get("peer"),
        "via": ctx.get("via"),
        "proxy_protocol": ctx.get("proxy_protocol"),
        "forwarded": parse_forwarded(req.header_values("forwarded")),
        "x_forwarded_for": parse_x_forwarded_for(req.header_values("x-forwarded-for")),
        "x_forwarded_proto": next(iter(req.header_values("x-forwarded-proto")), None),
        "x_forwarded_client_cert": parse_xfcc(req.header_values("x-forwarded-client-cert")),
    }


def echo_document(req: Request, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON answer: the request, the connection, TLS, the ClientHello
    and the server."""
    split = urlsplit(req.target)
    return {
        "request": {
            "method": req.method,
            "target": req.target,
            "path": split.path or "/",
            "query": req.query,
            "http_version": req.http_version,
            "headers": [[k, v] for k, v in req.headers],
            **_body_field(req.body),
        },
        "connection": _proxies(req, ctx),
        "tls": ctx.get("tls"),
        "client_hello": ctx.get("client_hello"),
        "server": ctx.get("server"),
    }


def _fingerprints(ctx: Mapping[str, Any]) -> dict[str, Any] | None:
    hello = ctx.get("client_hello")
    if not isinstance(hello, Mapping):
        return None
    return {k: hello.get(k) for k in ("ja3", "ja3_hash", "ja4", "ja4_r")}


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    try:
        value = kind(text)
    except ValueError:
        return None
    return value if value == value and value >= 0 else None  # no NaN, no negatives


def _health_answer(ok: bool, head: bool) -> Response:
    """GET /health's answer: made once, copied per request (a health
    check is the request a load balancer sends most)."""
    status, ctype, body = _HEALTH[ok]
    return _sized(status, ctype, body, head)


def _health(req: Request, health: Health, head: bool) -> Response:
    if req.method == "POST":
        wanted = (req.query.get("status") or [req.body.decode("ascii", "replace").strip()])[0]
        if wanted in ("ok", "pass", "up"):
            health.ok = True
        elif wanted in ("fail", "failing", "down"):
            health.ok = False
        elif wanted == "":
            health.flip()
        else:
            return _json(400, {"error": f"status must be ok or fail, not {wanted!r}"})
        return _json(200, {"status": "ok" if health.ok else "failing"})
    if req.method not in ("GET", "HEAD"):
        return _json(405, {"error": "GET, HEAD or POST"})
    return _health_answer(health.ok, head)


def _route(req: Request, ctx: Mapping[str, Any], health: Health, limits: HttpLimits) -> Response:
    path = req.path
    head = req.method == "HEAD"
    first, _, arg = path.lstrip("/").partition("/")
    if path == "/health":
        return _health(req, health, head)
    if first == "status" and arg:
        code = _number(arg, int)
        if code is None or not 200 <= code <= 599:
            return _json(400, {"error": f"status must be 200..599, not {arg!r}"})
        return _json(int(code), echo_document(req, ctx), head=head)
    if first == "delay" and arg:
        seconds = _number(arg, float)
        if seconds is None:
            return _json(400, {"error": f"delay must be a number of seconds, not {arg!r}"})
        resp = _json(200, echo_document(req, ctx), head=head)
        resp.delay = min(float(seconds), limits.max_delay)
        return resp
    if first == "bytes" and arg:
        n = _number(arg, int)
        if n is None or n > limits.max_bytes:
            return _json(400, {"error": f"bytes must be 0..{limits.max_bytes}, not {arg!r}"})
        seed = _number((req.query.get("seed") or ["-"])[0], int)
        rng = random.Random(seed) if seed is not None else random.Random()
        return _sized(200, b"application/octet-stream", rng.randbytes(int(n)), head)
    if first == "stream" and arg:
        n = _number(arg, int)
        if n is None:
            return _json(400, {"error": f"stream must be a number of lines, not {arg!r}"})
        doc = echo_document(req, ctx)
        lines = tuple(
            json.dumps({"id": i, **doc}, ensure_ascii=False).encode() + b"\n"
            for i in range(min(int(n), limits.max_stream))
        )
        resp = Response(200, [(b"content-type", _JSON)], chunks=() if head else lines)
        return resp
    if path == "/headers":
        return _json(200, {"headers": [[k, v] for k, v in req.headers]}, head=head)
    if path == "/ip":
        proxies = _proxies(req, ctx)
        peer = str(ctx.get("peer") or "")
        origin = peer.rsplit(":", 1)[0].strip("[]") if peer else None
        return _json(200, {"origin": origin, **proxies}, head=head)
    if path == "/tls":
        doc = {"tls": ctx.get("tls"), "fingerprints": _fingerprints(ctx)}
        return _json(200, doc, head=head)
    if path == "/hello":
        return _json(200, {"client_hello": ctx.get("client_hello")}, head=head)
    doc = echo_document(req, ctx)
    if any("text/html" in v for v in req.header_values("accept")):
        page = render_page(doc).encode()
        return _sized(200, b"text/html; charset=utf-8", page, head)
    return _json(200, doc, head=head)


def respond(
    req: Request,
    ctx: Mapping[str, Any],
    health: Health,
    limits: HttpLimits | None = None,
) -> Response:
    """The response to ``req``.

    The request headers ``x-set-response-status-code`` and
    ``x-set-response-delay-ms`` (as in mendhak/http-https-echo) set the
    status and a delay on any path.
    """
    limits = limits or HttpLimits()
    resp = _route(req, ctx, health, limits)
    for value in req.header_values("x-set-response-status-code")[:1]:
        code = _number(value, int)
        if code is None or not 200 <= code <= 599:
            return _json(400, {"error": f"x-set-response-status-code: 200..599, not {value!r}"})
        resp.status = int(code)
        if resp.status in _NO_BODY:
            resp.body, resp.chunks = b"", None
            resp.headers = [h for h in resp.headers if h[0] != b"content-length"]
    for value in req.header_values("x-set-response-delay-ms")[:1]:
        ms = _number(value, float)
        if ms is None:
            return _json(400, {"error": f"x-set-response-delay-ms: a number, not {value!r}"})
        resp.delay = min(float(ms) / 1000, limits.max_delay)
    return resp
