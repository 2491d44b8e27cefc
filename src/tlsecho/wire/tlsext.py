"""Decoders of the ClientHello's extension bodies (sans-IO, no state).

Each decoder takes an extension's body and returns its value, or raises
:class:`ClientHelloError`; :data:`DECODERS` maps an extension type to its
decoder. :mod:`tlsecho.wire.clienthello` applies them.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["DECODERS", "ClientHelloError", "Ext", "u16_list", "vector"]


class ClientHelloError(ValueError):
    """The bytes are not a well-formed TLS ClientHello (the peer's fault)."""


class Ext(enum.IntEnum):
    """Extension types (IANA) decoded here or looked for."""

    SERVER_NAME = 0x0000
    STATUS_REQUEST = 0x0005
    SUPPORTED_GROUPS = 0x000A
    EC_POINT_FORMATS = 0x000B
    SIGNATURE_ALGORITHMS = 0x000D
    ALPN = 0x0010
    SCT = 0x0012
    PADDING = 0x0015
    EXTENDED_MASTER_SECRET = 0x0017
    COMPRESS_CERTIFICATE = 0x001B
    RECORD_SIZE_LIMIT = 0x001C
    SESSION_TICKET = 0x0023
    PRE_SHARED_KEY = 0x0029
    EARLY_DATA = 0x002A
    SUPPORTED_VERSIONS = 0x002B
    PSK_KEY_EXCHANGE_MODES = 0x002D
    POST_HANDSHAKE_AUTH = 0x0031
    SIGNATURE_ALGORITHMS_CERT = 0x0032
    KEY_SHARE = 0x0033
    ENCRYPTED_CLIENT_HELLO = 0xFE0D
    RENEGOTIATION_INFO = 0xFF01


def vector(data: bytes, pos: int, length_bytes: int, what: str) -> tuple[bytes, int]:
    """The vector at ``pos`` with a ``length_bytes`` length prefix, and the
    position after it."""
    start = pos + length_bytes
    if start > len(data):
        raise ClientHelloError(f"ClientHello truncated in {what}")
    end = start + int.from_bytes(data[pos:start], "big")
    if end > len(data):
        raise ClientHelloError(f"ClientHello truncated in {what}")
    return data[start:end], end


def _whole(data: bytes, length_bytes: int, what: str) -> bytes:
    """An extension's body that is exactly one vector."""
    inner, end = vector(data, 0, length_bytes, what)
    if end != len(data):
        raise ClientHelloError(f"trailing bytes in {what}")
    return inner


def u16_list(data: bytes, what: str) -> tuple[int, ...]:
    if len(data) % 2:
        raise ClientHelloError(f"odd length in {what}")
    return struct.unpack(f">{len(data) // 2}H", data)


def _u16s(length_bytes: int, what: str) -> Callable[[bytes], tuple[int, ...]]:
    """A decoder of an extension that is one vector of 16-bit values."""

    def decode(data: bytes) -> tuple[int, ...]:
        size = len(data) - length_bytes
        if size < 0 or size % 2 or int.from_bytes(data[:length_bytes], "big") != size:
            raise ClientHelloError(f"malformed {what}")
        return struct.unpack_from(f">{size // 2}H", data, length_bytes)

    return decode


def _u8s(what: str) -> Callable[[bytes], tuple[int, ...]]:
    return lambda data: tuple(_whole(data, 1, what))


def _server_name(data: bytes) -> str | None:
    names = _whole(data, 2, "server_name") if data else b""
    pos = 0
    while pos < len(names):
        kind = names[pos]
        name_, pos = vector(names, pos + 1, 2, "server_name")
        if kind == 0:
            return name_.decode("ascii", "replace")
    return None


def _alpn(data: bytes) -> tuple[bytes, ...]:
    protocols = _whole(data, 2, "alpn")
    out = []
    pos = 0
    while pos < len(protocols):
        proto, pos = vector(protocols, pos, 1, "alpn")
        out.append(proto)
    return tuple(out)


def _key_share(data: bytes) -> tuple[int, ...]:
    shares = _whole(data, 2, "key_share")
    groups = []
    pos = 0
    while pos < len(shares):
        if pos + 2 > len(shares):
            raise ClientHelloError("ClientHello truncated in key_share")
        groups.append((shares[pos] << 8) | shares[pos + 1])
        _, pos = vector(shares, pos + 2, 2, "key_share")
    return tuple(groups)


def _u16(what: str) -> Callable[[bytes], int]:
    def decode(data: bytes) -> int:
        if len(data) != 2:
            raise ClientHelloError(f"{what} is not two bytes")
        return (data[0] << 8) | data[1]

    return decode


def _status_request(data: bytes) -> int:
    if not data:
        raise ClientHelloError("empty status_request")
    return data[0]


def _present(data: bytes) -> bool:
    return True


DECODERS: dict[int, Callable[[bytes], Any]] = {
    Ext.SERVER_NAME: _server_name,
    Ext.STATUS_REQUEST: _status_request,
    Ext.SUPPORTED_GROUPS: _u16s(2, "supported_groups"),
    Ext.EC_POINT_FORMATS: _u8s("ec_point_formats"),
    Ext.SIGNATURE_ALGORITHMS: _u16s(2, "signature_algorithms"),
    Ext.ALPN: _alpn,
    Ext.SCT: _present,
    Ext.PADDING: len,
    Ext.EXTENDED_MASTER_SECRET: _present,
    Ext.COMPRESS_CERTIFICATE: _u16s(1, "compress_certificate"),
    Ext.RECORD_SIZE_LIMIT: _u16("record_size_limit"),
    Ext.SESSION_TICKET: len,
    Ext.PRE_SHARED_KEY: _present,
    Ext.EARLY_DATA: _present,
    Ext.SUPPORTED_VERSIONS: _u16s(1, "supported_versions"),
    Ext.PSK_KEY_EXCHANGE_MODES: _u8s("psk_key_exchange_modes"),
    Ext.POST_HANDSHAKE_AUTH: _present,
    Ext.SIGNATURE_ALGORITHMS_CERT: _u16s(2, "signature_algorithms_cert"),
    Ext.KEY_SHARE: _key_share,
    Ext.ENCRYPTED_CLIENT_HELLO: _present,
    Ext.RENEGOTIATION_INFO: _u8s("renegotiation_info"),
}
