"""The server's clear-text flight: ServerHello, HelloRetryRequest, the
TLS 1.2 ServerKeyExchange's curve, JA3S; only ClientHelloError escapes."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from tlsecho.wire.serverhello import HRR_RANDOM, parse_server_flight
from tlsecho.wire.tlsext import ClientHelloError


def record(ctype: int, payload: bytes) -> bytes:
    return bytes([ctype, 3, 3]) + len(payload).to_bytes(2, "big") + payload


def message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def server_hello(random: bytes, suite: int, exts: list[tuple[int, bytes]]) -> bytes:
    block = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in exts)
    body = b"\x03\x03" + random + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    return message(2, body + len(block).to_bytes(2, "big") + block)


TLS13 = (0x002B, b"\x03\x04")


def test_hello_retry_then_server_hello() -> None:
    hrr = server_hello(HRR_RANDOM, 0x1302, [TLS13, (0x0033, b"\x00\x18")])
    sh = server_hello(bytes(32), 0x1302, [TLS13, (0x0033, b"\x00\x18\x00\x02ab")])
    flight = record(22, hrr) + record(20, b"\x01") + record(22, sh) + record(23, b"secret")
    f = parse_server_flight(flight)
    assert f is not None
    assert (f.hello_retry, f.retry_group, f.group_name) == (True, 0x18, "secp384r1")
    assert (f.version_name, f.cipher_name) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert f.ja3s() == "771,4866,43-51" and len(f.ja3s_hash()) == 32


def test_tls12_group_from_the_server_key_exchange() -> None:
    sh = server_hello(bytes(32), 0xC02B, [(0xFF01, b"\x00"), (0x000B, b"\x01\x00")])
    ske = message(12, b"\x03\x00\x1d\x20" + bytes(32))
    # ServerHello and ServerKeyExchange split across records, as servers may.
    data = sh + ske
    f = parse_server_flight(record(22, data[:10]) + record(22, data[10:]))
    assert f is not None
    assert (f.version_name, f.group_name, f.hello_retry) == ("TLSv1.2", "x25519", False)
    assert f.ja3s() == "771,49195,65281-11"


def test_no_server_hello() -> None:
    assert parse_server_flight(b"") is None
    assert parse_server_flight(record(21, b"\x02\x28")) is None  # an alert


@given(st.binary(max_size=600))
def test_only_documented_errors_escape(data: bytes) -> None:
    with contextlib.suppress(ClientHelloError):
        parse_server_flight(data)


@given(st.binary(max_size=40))
def test_corrupt_server_hellos(junk: bytes) -> None:
    sh = server_hello(bytes(32), 0x1301, [TLS13, (0x0033, b"\x00\x1d\x00\x00")])
    with contextlib.suppress(ClientHelloError):
        parse_server_flight(record(22, sh[:20] + junk))
