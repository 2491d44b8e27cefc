"""Golden ClientHellos: what a client offers, stored as JSON and compared
with a readable diff, so a library team sees a TLS regression in its client
(a suite dropped, a group added, extensions reordered) as a failing test.

The stored view (:func:`golden_view`) leaves out what changes on every
connection: the random, the session id, key share bytes, padding length,
and GREASE values (RFC 8701: a client picks new ones each time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tlsecho.wire.clienthello import ClientHello
from tlsecho.wire.tlsnames import (
    CIPHER_SUITES,
    EXTENSIONS,
    GROUPS,
    SIGNATURE_SCHEMES,
    is_grease,
    names,
    version_name,
)

__all__ = ["GoldenMismatch", "check", "compare", "golden_view", "load", "save"]


class GoldenMismatch(AssertionError):
    """The ClientHello differs from the golden one (the message is the diff)."""


def golden_view(hello: ClientHello) -> dict[str, Any]:
    """What a golden file stores: stable across connections of one client."""

    def clean(values: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(v for v in values if not is_grease(v))

    return {
        "legacy_version": version_name(hello.legacy_version),
        "supported_versions": [version_name(v) for v in clean(hello.supported_versions)],
        "cipher_suites": names(CIPHER_SUITES, clean(hello.cipher_suites)),
        "extensions": names(EXTENSIONS, clean(hello.extension_types)),
        "supported_groups": names(GROUPS, clean(hello.supported_groups)),
        "key_share_groups": names(GROUPS, clean(hello.key_share_groups)),
        "signature_algorithms": names(SIGNATURE_SCHEMES, hello.signature_algorithms),
        "alpn": [a.decode("ascii", "backslashreplace") for a in hello.alpn],
        "ec_point_formats": list(hello.ec_point_formats),
        "psk_key_exchange_modes": list(hello.psk_key_exchange_modes),
        "compress_certificate": list(hello.compress_certificate),
        "record_size_limit": hello.record_size_limit,
        "server_name": hello.server_name,
        "ja4": hello.ja4(),
    }


def compare(
    golden: dict[str, Any], hello: ClientHello, *, ignore_extension_order: bool = False
) -> list[str]:
    """The differences, one readable line each (empty: the same).

    ``ignore_extension_order``: for clients that shuffle their extensions
    (Chrome does, on purpose).
    """
    now = golden_view(hello)
    lines: list[str] = []
    for key in sorted(set(golden) | set(now)):
        old, new = golden.get(key), now.get(key)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            gone = [v for v in old if v not in new]
            came = [v for v in new if v not in old]
            if gone or came:
                parts = [f"+{v}" for v in came] + [f"-{v}" for v in gone]
                lines.append(f"{key}: {', '.join(parts)}")
            elif key == "extensions" and ignore_extension_order:
                continue
            else:
                lines.append(f"{key}: order changed: {old} -> {new}")
        else:
            lines.append(f"{key}: {old!r} -> {new!r}")
    return lines


def load(path: Path) -> dict[str, Any]:
    """A golden file's view."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a golden ClientHello (a JSON object)")
    return data


def save(path: Path, hello: ClientHello) -> None:
    """Write ``hello``'s view as the golden file (directories made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden_view(hello), indent=2) + "\n")


def check(
    path: Path, hello: ClientHello, *, update: bool = False, ignore_extension_order: bool = False
) -> None:
    """Assert ``hello`` matches the golden file at ``path``; with ``update``,
    (re)write the file instead.

    Raises:
        GoldenMismatch: it differs, or there is no golden file yet.
    """
    if update:
        save(path, hello)
        return
    if not path.exists():
        raise GoldenMismatch(
            f"no golden ClientHello at {path}: run pytest with --tlsecho-update-golden to write it"
        )
    diff = compare(load(path), hello, ignore_extension_order=ignore_extension_order)
    if diff:
        raise GoldenMismatch(
            f"the ClientHello differs from {path} (--tlsecho-update-golden accepts it):\n  "
            + "\n  ".join(diff)
        )
