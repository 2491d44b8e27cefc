"""Golden ClientHello views and their diffs, on the 63 real ClientHellos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlsecho.wire.clienthello import parse_client_hello
from tlsecho.wire.golden import GoldenMismatch, check, compare, golden_view

VECTORS = json.loads((Path(__file__).parent / "data" / "clienthellos.json").read_text())["vectors"]
CHROME = parse_client_hello(bytes.fromhex(VECTORS[0]["records_hex"]))  # has GREASE


def test_the_view_leaves_grease_and_randomness_out() -> None:
    view = golden_view(CHROME)
    assert "GREASE" not in json.dumps(view)
    assert view["ja4"] == VECTORS[0]["ja4"]
    assert "random" not in view and "session_id" not in view
    assert compare(view, CHROME) == []


def test_diff_lines() -> None:
    golden = golden_view(CHROME)
    golden["cipher_suites"] = [*golden["cipher_suites"][1:], "TLS_OLD_SUITE"]
    golden["alpn"] = ["h2"]
    golden["server_name"] = "old.example"
    diff = compare(golden, CHROME)
    assert "cipher_suites: +TLS_AES_128_GCM_SHA256, -TLS_OLD_SUITE" in diff
    assert "alpn: +http/1.1" in diff
    assert "server_name: 'old.example' -> 'bad.curveballtest.com'" in diff


def test_extension_order() -> None:
    golden = golden_view(CHROME)
    golden["extensions"] = list(reversed(golden["extensions"]))
    (line,) = compare(golden, CHROME)
    assert line.startswith("extensions: order changed:")
    assert compare(golden, CHROME, ignore_extension_order=True) == []


def test_check_writes_and_compares(tmp_path: Path) -> None:
    path = tmp_path / "g" / "chrome.json"
    with pytest.raises(GoldenMismatch, match="no golden ClientHello"):
        check(path, CHROME)
    check(path, CHROME, update=True)
    check(path, CHROME)
    other = parse_client_hello(bytes.fromhex(VECTORS[1]["records_hex"]))
    with pytest.raises(GoldenMismatch, match="differs from"):
        check(path, other)
