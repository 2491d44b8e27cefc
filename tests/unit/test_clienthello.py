"""The sans-IO ClientHello parser and its fingerprints, against 63 real
ClientHellos (FoxIO's public captures) with the reference tools' JA4/JA4_r and
Wireshark's JA3; fed whole, byte by byte, in several records, with trailing
bytes, and fuzzed: only ClientHelloError may escape."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.strategies import split
from tlsecho.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHelloError,
    ClientHelloParser,
    is_grease,
    parse_client_hello,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "clienthellos.json").read_text()
)["vectors"]
IDS = [f"{v['source'].rsplit('/', 1)[-1]}#{v['tcp_stream']}" for v in VECTORS]
FIRST = bytes.fromhex(VECTORS[0]["records_hex"])


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_fingerprints_match_the_reference_tools(vector: dict[str, Any]) -> None:
    ch = parse_client_hello(bytes.fromhex(vector["records_hex"]))
    assert ch.ja4() == vector["ja4"]
    assert ch.ja4_r() == vector["ja4_r"]
    assert ch.ja3() == vector["ja3"]
    assert ch.ja3_hash() == vector["ja3_hash"]
    assert ch.server_name == (vector["sni"] or None)


def test_decoded_fields() -> None:
    ch = parse_client_hello(FIRST)
    assert ch.server_name == "bad.curveballtest.com"
    assert ch.legacy_version == 0x0303 and ch.record_version == 0x0301
    assert len(ch.random) == 32
    assert ch.cipher_suites[0] == 0xAAAA and is_grease(ch.cipher_suites[0])
    assert ch.alpn == (b"h2", b"http/1.1")
    assert 0x001D in ch.supported_groups and 0x001D in ch.key_share_groups
    assert 0x0304 in ch.supported_versions
    assert ch.signature_algorithms[0] == 0x0403
    assert ch.ec_point_formats == (0,)


def test_ja3n_sorts_the_extensions() -> None:
    ch = parse_client_hello(FIRST)
    exts = ch.ja3(sort_extensions=True).split(",")[2].split("-")
    assert exts == sorted(exts, key=int)
    assert ch.ja3_hash(sort_extensions=True) != ch.ja3_hash()


@pytest.mark.parametrize("value", [0x0A0A, 0x1A1A, 0xFAFA])
def test_grease(value: int) -> None:
    assert is_grease(value)
    assert not is_grease(value + 1) and not is_grease(0x0A1A)


def test_byte_by_byte_and_trailing_bytes() -> None:
    parser = ClientHelloParser()
    results = [parser.feed(FIRST[i : i + 1]) for i in range(len(FIRST))]
    assert all(r is None for r in results[:-1])
    assert results[-1] == parse_client_hello(FIRST)
    # Whatever follows the ClientHello (the next flight) is not its business.
    assert parse_client_hello(FIRST + b"\x17\x03\x03\x00\x05hello") == results[-1]


def rerecord(records: bytes, size: int) -> bytes:
    """The same handshake bytes in records of ``size`` bytes each."""
    hs = records[5:]
    out = b""
    for i in range(0, len(hs), size):
        chunk = hs[i : i + size]
        out += b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
    return out


@pytest.mark.parametrize("size", [1, 7, 100])
def test_a_client_hello_over_several_records(size: int) -> None:
    assert parse_client_hello(rerecord(FIRST, size)).ja4() == VECTORS[0]["ja4"]


@given(split(FIRST))
def test_any_split(chunks: list[bytes]) -> None:
    parser = ClientHelloParser()
    result = None
    for c in chunks:
        result = parser.feed(c) or result
    assert result is not None and result.ja4() == VECTORS[0]["ja4"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "not a TLS handshake record"),
        (b"\x16\x03\x01\x00\x00", "out of range"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not a ClientHello"),
        (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "truncated in random"),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", "over the limit"),
    ],
)
def test_errors(data: bytes, match: str) -> None:
    with pytest.raises(ClientHelloError, match=match):
        parse_client_hello(data)


def test_incomplete_is_need_more_not_an_error() -> None:
    assert ClientHelloParser().feed(FIRST[:-1]) is None
    with pytest.raises(ClientHelloError, match="incomplete"):
        parse_client_hello(FIRST[:-1])


def test_the_buffer_is_capped() -> None:
    # A ClientHello that says it is longer than the limit: refused at once.
    declared = b"\x16\x03\x01\x00\x04\x01\x00\x07\xd0"  # 2,000 bytes
    with pytest.raises(ClientHelloError, match="of 2004 bytes is over the limit"):
        ClientHelloParser(limit=1000).feed(declared)
    # A record that never ends: refused once the buffer passes the limit.
    parser = ClientHelloParser(limit=1000)
    assert parser.feed(b"\x16\x03\x01\x05\xdc" + b"\x00" * 900) is None
    with pytest.raises(ClientHelloError, match="over the limit"):
        parser.feed(b"\x00" * 200)
    assert MAX_CLIENT_HELLO == 65536


@pytest.mark.parametrize(
    ("alpn", "code"),
    [(b"h2", "h2"), (b"http/1.1", "h1"), (b"\xab\xcd", "ad"), (b"x\x00", "70")],
)
def test_alpn_code(alpn: bytes, code: str) -> None:
    from tlsecho.clienthello import _alpn_code

    # Non-alphanumeric ends: the first and last hex characters (the JA4 text).
    assert _alpn_code((alpn,)) == code


@given(st.binary(max_size=3000))
def test_only_documented_errors_escape(data: bytes) -> None:
    with contextlib.suppress(ClientHelloError):
        ClientHelloParser().feed(data)


@given(st.integers(min_value=5, max_value=len(FIRST) - 1), st.binary(min_size=1, max_size=8))
def test_corrupted_client_hellos_fail_cleanly(at: int, junk: bytes) -> None:
    data = FIRST[:at] + junk + FIRST[at + len(junk) :]
    try:
        result = ClientHelloParser().feed(data)
    except ClientHelloError:
        return
    if result is not None:  # what parsed must fingerprint without error
        result.ja4()
        result.ja3_hash()
