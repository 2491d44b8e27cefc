"""The sans-IO ClientHello parser and its fingerprints, against 63 real
ClientHellos (FoxIO's public captures) with the reference tools' JA4/JA4_r and
Wireshark's JA3; fed whole, byte by byte, in several records, with trailing
bytes, and fuzzed: only ClientHelloError may escape."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.strategies import split
from tlsecho.wire.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHelloError,
    ClientHelloParser,
    is_grease,
    parse_client_hello,
)
from tlsecho.wire.tlsnames import CIPHER_SUITES, EXTENSIONS, GROUPS, SIGNATURE_SCHEMES, name

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
    assert ch.psk_key_exchange_modes == (1,)
    assert ch.session_ticket == 0  # the extension, empty: "send me a ticket"
    assert ch.extended_master_secret and ch.renegotiation_info
    assert ch.status_request == 1 and ch.signed_certificate_timestamp
    assert ch.compress_certificate == (2,)  # brotli
    assert ch.padding == 195
    assert not ch.pre_shared_key and not ch.early_data and not ch.encrypted_client_hello
    assert ch.record_size_limit is None and ch.signature_algorithms_cert == ()
    assert [e.name for e in ch.extensions][:3] == [
        "GREASE",
        "server_name",
        "extended_master_secret",
    ]


def test_report_names_everything_and_carries_the_fingerprints() -> None:
    report = parse_client_hello(FIRST).report()
    json.dumps(report)  # a JSON document as it is
    assert report["supported_versions"][:2] == ["GREASE", "TLSv1.3"]
    assert report["cipher_suites"][1] == "TLS_AES_128_GCM_SHA256"
    assert report["supported_groups"] == ["GREASE", "x25519", "secp256r1", "secp384r1"]
    assert report["signature_algorithms"][0] == "ecdsa_secp256r1_sha256"
    assert report["alpn"] == ["h2", "http/1.1"]
    assert report["extensions"][-1] == {"type": 21, "name": "padding", "length": 195}
    assert report["ja4"] == VECTORS[0]["ja4"] and report["ja3_hash"] == VECTORS[0]["ja3_hash"]


def hello(*extensions: tuple[int, bytes], suites: bytes = b"\x13\x01") -> bytes:
    """A ClientHello record with these extensions (type, body)."""
    exts = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in extensions)
    body = b"\x03\x03" + bytes(32) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00"
    body += len(exts).to_bytes(2, "big") + exts
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg


def test_the_rarer_extensions() -> None:
    ch = parse_client_hello(
        hello(
            (0x0033, b"\x00\x0a" + b"\x11\xec\x00\x02ab" + b"\x00\x1d\x00\x00"),
            (0x000A, b"\x00\x04\x11\xec\x00\x1d"),
            (0x0032, b"\x00\x02\x08\x07"),
            (0x001C, b"\x40\x01"),
            (0x0029, b"\x00"),
            (0x002A, b""),
            (0x0031, b""),
            (0xFE0D, b"\x00\x01"),
        )
    )
    assert ch.key_share_groups == (0x11EC, 0x001D)
    assert ch.report()["key_share_groups"] == ["X25519MLKEM768", "x25519"]
    assert ch.report()["signature_algorithms_cert"] == ["ed25519"]
    assert ch.record_size_limit == 16385
    assert ch.pre_shared_key and ch.early_data and ch.post_handshake_auth
    assert ch.encrypted_client_hello
    assert ch.extensions[-1].name == "encrypted_client_hello"
    assert ch.server_name is None and ch.alpn == ()
    # No supported_versions, SNI, ALPN or signature_algorithms: t12, i, 00, no "_sigs".
    assert ch.ja4_r() == "t12i010800_1301_000a,001c,0029,002a,0031,0032,0033,fe0d"
    assert ch.malformed == ()


@pytest.mark.parametrize(
    ("table", "value", "expected"),
    [
        (CIPHER_SUITES, 0x1302, "TLS_AES_256_GCM_SHA384"),
        (CIPHER_SUITES, 0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
        (GROUPS, 4588, "X25519MLKEM768"),
        (GROUPS, 0x001D, "x25519"),
        (SIGNATURE_SCHEMES, 0x0804, "rsa_pss_rsae_sha256"),
        (EXTENSIONS, 0xFF01, "renegotiation_info"),
        (EXTENSIONS, 0x3A3A, "GREASE"),
        (GROUPS, 0x7777, "0x7777"),
    ],
)
def test_iana_names(table: Mapping[int, str], value: int, expected: str) -> None:
    assert name(table, value) == expected


@pytest.mark.parametrize(
    ("ext", "match"),
    [
        ((0x000A, b"\x00\x03\x00\x1d\x00"), "malformed supported_groups"),
        ((0x0033, b"\x00\x04\x00\x1d\x00\x09"), "truncated in key_share"),
        ((0x001C, b"\x40"), "record_size_limit is not two bytes"),
        ((0x0010, b"\x00\x03\x05h2"), "truncated in alpn"),
        ((0x0000, b"\x00\x05\x00\x00\x09ab"), "truncated in server_name"),
        ((0x0005, b""), "empty status_request"),
        ((0x002B, b"\x04\x03\x04"), "malformed supported_versions"),
    ],
)
def test_malformed_extensions(ext: tuple[int, bytes], match: str) -> None:
    # The framing is sound, the body not: the extension is listed, reads as
    # absent and is named in ``malformed`` (as Wireshark's "[Malformed]").
    from tlsecho.wire.tlsext import DECODERS

    ch = parse_client_hello(hello(ext))
    assert ch.extension_types == (ext[0],)
    assert ch.malformed == (ext[0],)
    assert ch.report()["malformed_extensions"] == [name(EXTENSIONS, ext[0])]
    with pytest.raises(ClientHelloError, match=match):
        DECODERS[ext[0]](ext[1])
    assert ch.ja4() and ch.ja3_hash()


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
    from tlsecho.wire.fingerprints import alpn_code as _alpn_code

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
