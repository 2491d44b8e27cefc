"""Sans-IO TLS ClientHello parser (the parsed view and its fingerprints,
JA3, JA3N, JA4, JA4_r, are :mod:`tlsecho.wire.hello`'s, re-exported here).

Fed the bytes a client sends first (TLS records: the ClientHello may span
several records and arrive in any number of pieces), :class:`ClientHelloParser`
returns a frozen :class:`ClientHello` or ``None`` (need more). Nothing else
than :class:`ClientHelloError` escapes it, and it never holds more than
:data:`MAX_CLIENT_HELLO` bytes. No I/O, no clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tlsecho.wire.fingerprints import JA4_CACHE, cached_ja4, ja4_key
from tlsecho.wire.hello import ClientHello, Extension
from tlsecho.wire.tlsext import ClientHelloError, u16_list, vector
from tlsecho.wire.tlsnames import (
    is_grease,
)

__all__ = [
    "MAX_CLIENT_HELLO",
    "ClientHello",
    "ClientHelloError",
    "ClientHelloParser",
    "Extension",
    "RawClientHello",
    "is_grease",
    "parse_client_hello",
]

#: The most bytes of records the parser keeps (a real ClientHello, post-quantum
#: key shares included, is under 4 KiB; the TLS maximum is 2^24).
MAX_CLIENT_HELLO = 64 * 1024

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_RECORD_MAX = 16384 + 2048  # RFC 8446 5.2: a record's largest length

_EXT_HEADER = struct.Struct(">HH").unpack_from


_Split = tuple[int, bytes, bytes, bytes, bytes, list[int], list[bytes]]


def _split(body: bytes) -> _Split:
    """A ClientHello message's parts: legacy version, random, session id,
    cipher suites (raw), compression methods, extension types and bodies."""
    if len(body) < 35:
        raise ClientHelloError("ClientHello truncated in random")
    session_id, pos = vector(body, 34, 1, "session id")
    if len(session_id) > 32:
        raise ClientHelloError("session id longer than 32 bytes")
    suites, pos = vector(body, pos, 2, "cipher suites")
    if len(suites) % 2:
        raise ClientHelloError("odd length in cipher suites")
    compression, pos = vector(body, pos, 1, "compression methods")
    types: list[int] = []
    datas: list[bytes] = []
    if pos < len(body):
        block, pos = vector(body, pos, 2, "extensions")
        i, size = 0, len(block)
        while i < size:
            if i + 4 > size:
                raise ClientHelloError("ClientHello truncated in extension header")
            ext_type, length = _EXT_HEADER(block, i)
            end = i + 4 + length
            if end > size:
                raise ClientHelloError("ClientHello truncated in extension")
            types.append(ext_type)
            datas.append(block[i + 4 : end])
            i = end
    legacy_version = (body[0] << 8) | body[1]
    return legacy_version, body[2:34], session_id, suites, compression, types, datas


def _parse_body(record_version: int, body: bytes) -> ClientHello:
    legacy_version, random, session_id, suites, compression, types, datas = _split(body)
    return ClientHello(
        record_version,
        legacy_version,
        random,
        session_id,
        u16_list(suites, "cipher suites"),
        compression,
        tuple(types),
        tuple(datas),
    )


@dataclass(frozen=True, slots=True)
class RawClientHello:
    """A whole ClientHello message, not parsed yet: a server keeps this for
    every connection and parses it only when something reads it (a log
    line, a metric, ``--mode hello``), so a quiet server does not pay."""

    record_version: int
    """The version of the first record's header."""
    message: bytes
    """The handshake message's body (after its type and length)."""
    _parsed: list[ClientHello | str] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def parse(self) -> ClientHello:
        """The ClientHello (parsed once).

        Raises:
            ClientHelloError: the message is malformed.
        """
        if not self._parsed:
            try:
                self._parsed.append(_parse_body(self.record_version, self.message))
            except ClientHelloError as exc:
                self._parsed.append(str(exc))
        result = self._parsed[0]
        if isinstance(result, str):
            raise ClientHelloError(result)
        return result

    def parsed(self) -> ClientHello | None:
        """The ClientHello, or None if it is malformed."""
        try:
            return self.parse()
        except ClientHelloError:
            return None

    def ja4(self) -> str | None:
        """The JA4 (None if malformed), without building a :class:`ClientHello`
        when one of the same shape was seen: what a server's log line needs,
        at a third of a parse's cost."""
        try:
            legacy, _, _, suites, _, types, datas = _split(self.message)
        except ClientHelloError:
            return None
        key = ja4_key(legacy, suites, tuple(types), datas)
        found = JA4_CACHE.get(key)
        if found is None:
            hello = self.parsed()
            if hello is None:
                return None
            found = cached_ja4(key, hello._ja4_both)
        return found[0]


class ClientHelloParser:
    """Incremental: feed the client's first bytes; a ClientHello comes out.

    Args:
        limit: the most record bytes to hold (:data:`MAX_CLIENT_HELLO`).
    """

    __slots__ = ("_buf", "_handshake", "_limit", "_record_version", "raw", "result")

    def __init__(self, limit: int = MAX_CLIENT_HELLO) -> None:
        self._buf = bytearray()
        self._handshake = bytearray()
        self._limit = limit
        self._record_version = 0
        self.raw: RawClientHello | None = None
        """The whole ClientHello message, once its records are in."""
        self.result: ClientHello | None = None
        """The ClientHello, once complete and parsed by :meth:`feed`."""

    def feed(self, data: bytes) -> ClientHello | None:
        """Add bytes; return the ClientHello once it is complete, else None.

        Bytes after the ClientHello's last record are ignored.

        Raises:
            ClientHelloError: not a TLS handshake record, not a ClientHello,
                malformed, or over the limit.
        """
        if self.result is None:
            raw = self.feed_raw(data)
            if raw is not None:
                self.result = raw.parse()
        return self.result

    def feed_raw(self, data: bytes) -> RawClientHello | None:
        """As :meth:`feed`, but the message comes out unparsed (its records
        checked, its contents not: :meth:`RawClientHello.parse` does that).

        Raises:
            ClientHelloError: not a TLS handshake record, not a ClientHello,
                or over the limit.
        """
        if self.raw is not None:
            return self.raw
        if not self._buf and not self._handshake:
            # The usual case: the whole ClientHello in one record, in one piece.
            raw = _one_record(data, self._limit)
            if raw is not None:
                self.raw = raw
                return raw
        self._buf += data
        while len(self._buf) >= 5:
            ctype, version, length = self._buf[0], self._buf[1:3], self._buf[3:5]
            if ctype != _HANDSHAKE:
                raise ClientHelloError(f"not a TLS handshake record (content type {ctype})")
            size = int.from_bytes(length, "big")
            if size == 0 or size > _RECORD_MAX:
                raise ClientHelloError(f"TLS record length {size} out of range")
            if len(self._buf) < 5 + size:
                break
            if not self._record_version:
                self._record_version = int.from_bytes(version, "big")
            self._handshake += self._buf[5 : 5 + size]
            del self._buf[: 5 + size]
            if len(self._handshake) >= 4:
                needed = _message_length(self._handshake, self._limit)
                if len(self._handshake) >= needed:
                    self.raw = RawClientHello(
                        self._record_version, bytes(self._handshake[4:needed])
                    )
                    self._buf.clear()
                    self._handshake.clear()
                    return self.raw
        if len(self._buf) + len(self._handshake) > self._limit:
            raise ClientHelloError("ClientHello over the limit")
        return None


def _message_length(handshake: bytes | bytearray, limit: int) -> int:
    """The length of the handshake message that starts ``handshake`` (its
    four header bytes included), checked to be a ClientHello under ``limit``."""
    if handshake[0] != _CLIENT_HELLO:
        raise ClientHelloError(
            f"the first handshake message is not a ClientHello (type {handshake[0]})"
        )
    needed = 4 + int.from_bytes(handshake[1:4], "big")
    if needed > limit:
        raise ClientHelloError(f"ClientHello of {needed} bytes is over the limit")
    return needed


def _one_record(data: bytes, limit: int) -> RawClientHello | None:
    """The ClientHello when ``data`` starts with one record that holds all of
    it (no copies into buffers); None for anything else (the general path
    then decides, errors included)."""
    if len(data) < 9 or data[0] != _HANDSHAKE:
        return None
    size = (data[3] << 8) | data[4]
    if size > _RECORD_MAX or len(data) < 5 + size or size < 4:
        return None
    needed = _message_length(data[5:9], limit)
    if needed > size:
        return None
    return RawClientHello((data[1] << 8) | data[2], data[9 : 5 + needed])


def parse_client_hello(records: bytes) -> ClientHello:
    """Parse a whole ClientHello (its TLS records).

    Raises:
        ClientHelloError: incomplete or malformed.
    """
    result = ClientHelloParser().feed(records)
    if result is None:
        raise ClientHelloError("ClientHello incomplete")
    return result
