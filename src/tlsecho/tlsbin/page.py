"""The page a browser gets (``Accept: text/html``): what it sent, on one
small self-contained HTML page (inline style, no script, no external asset).
Every value from the peer is escaped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

__all__ = ["render_page"]

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;
padding:.2em .6em;border-bottom:1px solid #eee}th{width:14em;font-weight:600}
code{font:13px ui-monospace,monospace;word-break:break-all}
.yes{color:#0a6b2a}.no{color:#a4161a}
"""


def _text(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _rows(rows: Iterable[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{escape(name)}</th><td><code>{escape(_text(value))}</code></td></tr>"
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def _get(doc: Mapping[str, Any] | None, key: str) -> Any:
    return doc.get(key) if isinstance(doc, Mapping) else None


def render_page(doc: Mapping[str, Any]) -> str:
    """The HTML for an echo document (:func:`tlsecho.tlsbin.routes.echo_document`)."""
    hello, tls = doc.get("client_hello"), doc.get("tls")
    request, conn = doc.get("request") or {}, doc.get("connection") or {}
    cert = _get(tls, "client_certificate")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width'>",
        f"<title>tlsecho: what your browser sent</title><style>{_STYLE}</style></head><body>",
        "<h1>What your browser sent</h1>",
        "<h2>Fingerprint</h2>",
        _rows(
            [
                ("JA4", _get(hello, "ja4")),
                ("JA4_r", _get(hello, "ja4_r")),
                ("JA3", _get(hello, "ja3_hash")),
                ("JA3 string", _get(hello, "ja3")),
            ]
        ),
        "<h2>Offered and negotiated</h2>",
        _rows(
            [
                (
                    "TLS version",
                    f"{_text(_get(tls, 'version'))}  (offered: "
                    f"{_text(_get(hello, 'supported_versions'))})",
                ),
                (
                    "Cipher suite",
                    f"{_text(_get(tls, 'cipher'))}  (offered: "
                    f"{_text(_get(hello, 'cipher_suites'))})",
                ),
                ("Key exchange groups offered", _get(hello, "supported_groups")),
                ("Key shares", _get(hello, "key_share_groups")),
                ("ALPN", f"{_text(_get(tls, 'alpn'))}  (offered: {_text(_get(hello, 'alpn'))})"),
                ("Server name (SNI)", _get(tls, "sni")),
                ("Resumed", _get(tls, "resumed")),
                ("Signature algorithms", _get(hello, "signature_algorithms")),
            ]
        ),
        "<h2>Client certificate</h2>",
        _rows(
            [
                ("Subject", _get(cert, "subject")),
                ("Issuer", _get(cert, "issuer")),
                ("Verified", _get(cert, "verified")),
                ("SHA-256", _get(cert, "sha256")),
            ]
        )
        if cert
        else "<p class=no>No client certificate was presented.</p>",
        "<h2>Request</h2>",
        _rows(
            [
                (
                    "Request",
                    f"{_text(request.get('method'))} {_text(request.get('target'))} "
                    f"HTTP/{_text(request.get('http_version'))}",
                ),
                ("Peer", conn.get("peer")),
                ("X-Forwarded-For", conn.get("x_forwarded_for")),
                *[(f"{k}", v) for k, v in request.get("headers") or []],
            ]
        ),
        "<p><small>tlsecho: the same as JSON without <code>Accept: text/html</code>"
        "</small></p></body></html>\n",
    ]
    return "".join(parts)
