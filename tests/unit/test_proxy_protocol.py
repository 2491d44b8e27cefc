"""The PROXY protocol parser: whole, byte by byte, with trailing bytes, fuzzed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.strategies import split
from tlsecho.wire.proxy_protocol import (
    V1_MAX,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyParser,
    ProxyProtocolError,
    build_v1,
    build_v2,
)

CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"

V1_TCP4 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 10000\r\n"
V1_UNKNOWN = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"
# The specification's worst case (section 2.1): exactly 107 bytes.
V1_LONGEST = (
    b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
)
V2_TCP4 = build_v2(("192.0.2.10", 56324), ("198.51.100.1", 443), tlvs=((0x02, b"example.test"),))
V2_TCP6 = build_v2(("2001:db8::1", 1), ("2001:db8::2", 2))
V2_LOCAL = build_v2(None, None)

VALID = [V1_TCP4, V1_TCP6, V1_UNKNOWN, V1_LONGEST, V2_TCP4, V2_TCP6, V2_LOCAL]


def parse_whole(data: bytes, accept: str = "any") -> tuple[ProxyHeader, int]:
    p = ProxyParser(accept)  # type: ignore[arg-type]
    n = p.feed(data)
    assert p.header is not None
    return p.header, n


def test_longest_v1_is_exactly_the_cap() -> None:
    assert len(V1_LONGEST) == V1_MAX
    one_more = V1_LONGEST[:-2] + b"f\r\n"
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        ProxyParser().feed(one_more)


@pytest.mark.parametrize("raw", VALID)
def test_whole(raw: bytes) -> None:
    header, n = parse_whole(raw)
    assert n == len(raw)
    assert header.length == len(raw)


@pytest.mark.parametrize("raw", VALID)
def test_byte_by_byte(raw: bytes) -> None:
    p = ProxyParser()
    for i, b in enumerate(raw):
        assert p.header is None
        assert p.feed(bytes([b])) == 1, i
    assert p.header == parse_whole(raw)[0]
    assert p.feed(b"x") == 0  # nothing more after the header


@pytest.mark.parametrize("raw", VALID)
def test_trailing_bytes_are_not_consumed(raw: bytes) -> None:
    header, n = parse_whole(raw + CLIENT_HELLO)
    assert n == len(raw)
    assert header.length == len(raw)


def test_v1_fields() -> None:
    h, _ = parse_whole(V1_TCP4)
    assert (h.version, h.command, h.family) == (1, "PROXY", "TCP4")
    assert h.source == ("192.0.2.10", 56324)
    assert h.destination == ("198.51.100.1", 443)
    h6, _ = parse_whole(V1_TCP6)
    assert h6.source == ("2001:db8::1", 65535)
    unknown, _ = parse_whole(V1_UNKNOWN)
    assert unknown.family == "UNKNOWN"
    assert unknown.source is None


def test_v2_fields_and_tlvs() -> None:
    h, _ = parse_whole(V2_TCP4)
    assert (h.version, h.command, h.family) == (2, "PROXY", "TCP4")
    assert h.source == ("192.0.2.10", 56324)
    assert h.tlvs == ((0x02, b"example.test"),)
    assert h.tlv_summary() == "authority=example.test"
    local, _ = parse_whole(V2_LOCAL)
    assert local.command == "LOCAL"
    assert local.source is None


def test_v2_local_ignores_its_address_block() -> None:
    raw = V2_SIGNATURE + struct.pack("!BBH", 0x20, 0x11, 12) + b"\x01" * 12
    h, n = parse_whole(raw)
    assert h.command == "LOCAL"
    assert n == len(raw)


def test_v2_unix() -> None:
    body = b"/run/src.sock".ljust(108, b"\0") + b"/run/dst.sock".ljust(108, b"\0")
    raw = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x31, len(body)) + body
    h, _ = parse_whole(raw)
    assert h.family == "UNIX"
    assert h.source == ("/run/src.sock", 0)


def test_builders_round_trip() -> None:
    assert build_v1(("192.0.2.10", 56324), ("198.51.100.1", 443)) == V1_TCP4
    h, _ = parse_whole(build_v1(("::1", 5), ("::1", 6)))
    assert h.source == ("::1", 5)


@pytest.mark.parametrize(
    ("raw", "accept", "match"),
    [
        (b"GET / HTTP/1.1\r\n", "any", "not a PROXY header"),
        (CLIENT_HELLO, "any", "not a PROXY header"),
        (V2_TCP4, "v1", "not a PROXY v1 header"),
        (V1_TCP4, "v2", "not a PROXY v2 header"),
        (b"PROXY TCP4 " + b"1" * 120 + b"\r\n", "any", "longer than 107"),
        (b"PROXY TCP4 " + b"1" * 120, "any", "longer than 107"),  # no CRLF yet
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "any", "malformed"),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "any", "bad TCP4 address"),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", "any", "bad TCP4 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "any", "bad port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "any", "bad port"),
        (b"PROXY SCTP 1.2.3.4 5.6.7.8 1 2\r\n", "any", "malformed"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\0" * 12, "any", "version 1"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\0" * 12, "any", "unknown command"),
        (V2_SIGNATURE + b"\x21\x41\x00\x00", "any", "unknown family"),
        (V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\0" * 4, "any", "cannot hold"),
        (V2_SIGNATURE + b"\x21\x11\x00\x0e" + b"\0" * 14, "any", "truncated TLV"),
        (V2_SIGNATURE + b"\x21\x11\x00\x10" + b"\0" * 12 + b"\x02\x00\x09x", "any", "TLV 0x02"),
    ],
)
def test_malformed(raw: bytes, accept: str, match: str) -> None:
    with pytest.raises(ProxyProtocolError, match=match):
        ProxyParser(accept).feed(raw)  # type: ignore[arg-type]


def test_v2_wrong_length_waits_then_stops_at_the_declared_end() -> None:
    # A v2 header declaring more bytes than sent is incomplete, not accepted.
    raw = V2_SIGNATURE + b"\x21\x11\x00\x20" + b"\0" * 12
    p = ProxyParser()
    assert p.feed(raw) == len(raw)
    assert p.header is None


@given(st.data(), st.sampled_from(VALID), st.binary(max_size=50))
def test_any_split_gives_the_same_header(data: st.DataObject, raw: bytes, tail: bytes) -> None:
    p = ProxyParser()
    consumed = sum(p.feed(c) for c in data.draw(split(raw + tail)))
    assert consumed == len(raw)
    assert p.header == parse_whole(raw)[0]


@given(st.binary(max_size=300), st.sampled_from(["v1", "v2", "any"]))
def test_fuzz_only_documented_errors(raw: bytes, accept: str) -> None:
    p = ProxyParser(accept)  # type: ignore[arg-type]
    try:
        n = p.feed(raw)
    except ProxyProtocolError:
        return
    assert 0 <= n <= len(raw)
    if p.header is None:
        assert n == len(raw)


@given(
    st.binary(min_size=4, max_size=200).map(lambda b: V2_SIGNATURE + b),
    st.sampled_from(["v2", "any"]),
)
def test_fuzz_v2_bodies(raw: bytes, accept: str) -> None:
    test_fuzz_only_documented_errors.hypothesis.inner_test(raw, accept)  # type: ignore[attr-defined]


@given(st.binary(max_size=120).map(lambda b: b"PROXY " + b))
def test_fuzz_v1_lines(raw: bytes) -> None:
    test_fuzz_only_documented_errors.hypothesis.inner_test(raw, "v1")  # type: ignore[attr-defined]


def test_report_names_and_decodes_tlvs() -> None:
    ssl_tlv = b"\x05" + (0).to_bytes(4, "big")
    ssl_tlv += b"\x21\x00\x07TLSv1.3" + b"\x22\x00\x06client" + b"\x99\x00\x01z"
    raw = build_v2(
        ("2001:db8::1", 4000),
        ("2001:db8::2", 443),
        tlvs=(
            (0x01, b"h2"),
            (0x20, ssl_tlv),
            (0x20, b"\x01\x00\x00\x00\x01\x21\x00"),
            (0xEE, b"\x00"),
        ),
    )
    parser = ProxyParser()
    parser.feed(raw)
    assert parser.header is not None
    report = parser.header.report()
    assert report["source"] == "[2001:db8::1]:4000" and report["family"] == "TCP6"
    alpn, ssl_ok, ssl_bad, other = report["tlvs"]
    assert alpn == {"type": 1, "name": "alpn", "value": "h2"}
    assert ssl_ok["client"] == ["ssl", "cert_sess"] and ssl_ok["verified"] is True
    assert ssl_ok["version"] == "TLSv1.3" and ssl_ok["cn"] == "client" and ssl_ok["0x99"] == "z"
    assert ssl_bad["verify"] == 1 and ssl_bad["verified"] is False and ssl_bad["malformed"]
    assert other == {"type": 0xEE, "name": "0xee", "value": "00"}
