"""What proxies say about a request, parsed: ``Forwarded`` (RFC 7239),
``X-Forwarded-For`` and Envoy's ``X-Forwarded-Client-Cert``.

Sans-IO and total: any header value gives a result (a malformed element is
kept as far as it parses), never an exception. This module imports nothing
from the package.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["parse_forwarded", "parse_x_forwarded_for", "parse_xfcc", "split_elements"]

# A header longer than this is not parsed (the request's header cap is the
# real limit; this keeps the work per header bounded on its own).
_MAX_VALUE = 16 * 1024


def split_elements(value: str, sep: str) -> list[str]:
    """``value`` split at ``sep`` outside double-quoted strings (a backslash
    escapes the next character inside them)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value[:_MAX_VALUE]:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [e.strip() for e in out if e.strip()]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        out: list[str] = []
        i = 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return text


def _pairs(element: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in split_elements(element, ";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            pairs[name.strip().lower()] = _unquote(value)
    return pairs


def parse_forwarded(values: list[str]) -> list[dict[str, str]]:
    """Every ``Forwarded`` header's elements, in order, e.g.
    ``[{"for": "192.0.2.60", "proto": "https", "by": "203.0.113.43"}]``."""
    out: list[dict[str, str]] = []
    for value in values:
        out.extend(p for p in (_pairs(e) for e in split_elements(value, ",")) if p)
    return out


def parse_x_forwarded_for(values: list[str]) -> list[str]:
    """The addresses in every ``X-Forwarded-For`` header, client first."""
    return [a.strip() for v in values for a in v[:_MAX_VALUE].split(",") if a.strip()]


def parse_xfcc(values: list[str]) -> list[dict[str, str]]:
    """Envoy's ``X-Forwarded-Client-Cert``: one dict per element, keys as
    Envoy writes them (``By``, ``Hash``, ``Cert``, ``Chain``, ``Subject``,
    ``URI``, ``DNS``); ``Cert`` and ``Chain`` URL-decoded to PEM."""
    out: list[dict[str, str]] = []
    for value in values:
        for element in split_elements(value, ","):
            fields: dict[str, str] = {}
            for part in split_elements(element, ";"):
                key, eq, val = part.partition("=")
                if not eq or not key.strip():
                    continue
                text = _unquote(val)
                key = key.strip()
                if key.lower() in ("cert", "chain"):
                    text = unquote(text)
                # DNS and URI may repeat: keep every value.
                fields[key] = f"{fields[key]},{text}" if key in fields else text
            if fields:
                out.append(fields)
    return out
