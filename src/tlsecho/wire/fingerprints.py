"""JA3/JA4 building blocks (sans-IO): the JA4 text's encodings, and a cache
of JA4 by what it depends on.

JA4 depends on the suites, the extension types and the bodies of
supported_versions, ALPN and signature_algorithms only: a client that sends
the same of those again gets its JA4 from the cache (most clients do; in a
busy server a cold computation costs several times a warm one).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

from tlsecho.wire.tlsext import Ext

__all__ = ["JA4_CACHE", "alpn_code", "cached_ja4", "hash12", "hex_list", "ja4_key"]

JA4_CACHE: dict[tuple[Any, ...], tuple[str, str]] = {}
JA4_CACHE_SIZE = 1024


def hex_list(values: list[int] | tuple[int, ...]) -> str:
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


def hash12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def alpn_code(alpn: tuple[bytes, ...]) -> str:
    """First and last character of the first ALPN value; ``00`` without one.

    A first or last byte that is not an ASCII letter or digit: the first
    character of the value's hex and the last (the JA4 text's rule; FoxIO's
    tools print ``99`` there, which says less).
    """
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    a, b = chr(first[0]), chr(first[-1])
    if a.isascii() and a.isalnum() and b.isascii() and b.isalnum():
        return a + b
    text = first.hex()
    return text[0] + text[-1]


def ja4_key(legacy: int, suites: object, types: tuple[int, ...], datas: Any) -> tuple[Any, ...]:
    """What JA4 depends on: the suites, the extension types, and the bodies
    of supported_versions, ALPN and signature_algorithms."""
    sv = alpn = sig = None
    if Ext.SUPPORTED_VERSIONS in types:
        sv = datas[types.index(Ext.SUPPORTED_VERSIONS)]
    if Ext.ALPN in types:
        alpn = datas[types.index(Ext.ALPN)]
    if Ext.SIGNATURE_ALGORITHMS in types:
        sig = datas[types.index(Ext.SIGNATURE_ALGORITHMS)]
    return legacy, suites, types, sv, alpn, sig


def cached_ja4(key: tuple[Any, ...], compute: Callable[[], tuple[str, str]]) -> tuple[str, str]:
    found = JA4_CACHE.get(key)
    if found is None:
        if len(JA4_CACHE) >= JA4_CACHE_SIZE:
            JA4_CACHE.clear()
        found = JA4_CACHE[key] = compute()
    return found
