"""Sans-IO TLS ClientHello parser and its fingerprints (JA3, JA3N, JA4, JA4_r).

Fed the bytes a client sends first (TLS records: the ClientHello may span
several records and arrive in any number of pieces), :class:`ClientHelloParser`
returns a frozen :class:`ClientHello` or ``None`` (need more). Nothing else
than :class:`ClientHelloError` escapes it, and it never holds more than
:data:`MAX_CLIENT_HELLO` bytes. No I/O, no clock.

JA4 follows FoxIO's specification (``technical_details/JA4.md``, BSD-3). JA3
follows Salesforce's: GREASE values (RFC 8701) removed everywhere.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "MAX_CLIENT_HELLO",
    "ClientHello",
    "ClientHelloError",
    "ClientHelloParser",
    "Extension",
    "is_grease",
    "parse_client_hello",
]

#: The most bytes of records the parser keeps (a real ClientHello, post-quantum
#: key shares included, is under 4 KiB; the TLS maximum is 2^24).
MAX_CLIENT_HELLO = 64 * 1024

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_RECORD_MAX = 16384 + 2048  # RFC 8446 5.2: a record's largest length

# Extension types this module decodes.
EXT_SERVER_NAME = 0x0000
EXT_SUPPORTED_GROUPS = 0x000A
EXT_EC_POINT_FORMATS = 0x000B
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_ALPN = 0x0010
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_KEY_SHARE = 0x0033

_VERSION_CODES = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}


class ClientHelloError(ValueError):
    """The bytes are not a well-formed TLS ClientHello (the peer's fault)."""


def is_grease(value: int) -> bool:
    """A GREASE value (RFC 8701): 0x0A0A, 0x1A1A, ..., 0xFAFA."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


class Extension(NamedTuple):
    """One extension, as offered (a named tuple: made ~16 times per hello,
    where a frozen dataclass costs a microsecond each)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a client offered, in the order it offered it."""

    record_version: int
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: tuple[Extension, ...]
    server_name: str | None
    supported_versions: tuple[int, ...]
    supported_groups: tuple[int, ...]
    key_share_groups: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    alpn: tuple[bytes, ...]
    ec_point_formats: tuple[int, ...]

    @property
    def extension_types(self) -> tuple[int, ...]:
        """Extension types in the order sent, GREASE included."""
        return tuple(e.type for e in self.extensions)

    # -- JA3 ------------------------------------------------------------------------
    def ja3(self, *, sort_extensions: bool = False) -> str:
        """The JA3 string (JA3N with ``sort_extensions``): decimal fields,
        GREASE removed."""
        exts = [t for t in self.extension_types if not is_grease(t)]
        if sort_extensions:
            exts.sort()
        fields = [
            str(self.legacy_version),
            "-".join(str(c) for c in self.cipher_suites if not is_grease(c)),
            "-".join(str(t) for t in exts),
            "-".join(str(g) for g in self.supported_groups if not is_grease(g)),
            "-".join(str(f) for f in self.ec_point_formats),
        ]
        return ",".join(fields)

    def ja3_hash(self, *, sort_extensions: bool = False) -> str:
        """MD5 of :meth:`ja3` (the usual JA3 fingerprint)."""
        text = self.ja3(sort_extensions=sort_extensions).encode()
        return hashlib.md5(text, usedforsecurity=False).hexdigest()

    # -- JA4 ------------------------------------------------------------------------
    def _ja4_a(self) -> str:
        versions = [v for v in self.supported_versions if not is_grease(v)]
        version = max(versions) if versions else self.legacy_version
        ciphers = [c for c in self.cipher_suites if not is_grease(c)]
        exts = [t for t in self.extension_types if not is_grease(t)]
        sni = "d" if EXT_SERVER_NAME in exts else "i"
        return (
            f"t{_VERSION_CODES.get(version, '00')}{sni}"
            f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_alpn_code(self.alpn)}"
        )

    def _ja4_lists(self) -> tuple[str, str]:
        ciphers = sorted(c for c in self.cipher_suites if not is_grease(c))
        exts = sorted(
            t
            for t in self.extension_types
            if not is_grease(t) and t not in (EXT_SERVER_NAME, EXT_ALPN)
        )
        cipher_text = ",".join(f"{c:04x}" for c in ciphers)
        ext_text = ",".join(f"{t:04x}" for t in exts)
        if self.signature_algorithms:
            sigs = ",".join(f"{s:04x}" for s in self.signature_algorithms)
            ext_text = f"{ext_text}_{sigs}"
        return cipher_text, ext_text

    def ja4(self) -> str:
        """JA4: ``a_b_c`` (version, SNI, counts, ALPN; hashed sorted ciphers;
        hashed sorted extensions and signature algorithms)."""
        cipher_text, ext_text = self._ja4_lists()
        return f"{self._ja4_a()}_{_hash12(cipher_text)}_{_hash12(ext_text)}"

    def ja4_r(self) -> str:
        """JA4_r: JA4 with the lists in clear instead of hashed."""
        cipher_text, ext_text = self._ja4_lists()
        return f"{self._ja4_a()}_{cipher_text}_{ext_text}"


def _hash12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _alpn_code(alpn: tuple[bytes, ...]) -> str:
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


class _Reader:
    """Bounds-checked reads over one buffer: every shortfall is a ClientHelloError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ClientHelloError(f"ClientHello truncated in {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def vector(self, length_bytes: int, what: str) -> bytes:
        return self.take(self.uint(length_bytes, what), what)

    def done(self) -> bool:
        return self.pos == len(self.data)


def _u16_list(data: bytes, what: str) -> tuple[int, ...]:
    if len(data) % 2:
        raise ClientHelloError(f"odd length in {what}")
    return struct.unpack(f">{len(data) // 2}H", data)


def _parse_body(record_version: int, body: bytes) -> ClientHello:
    r = _Reader(body)
    legacy_version = r.uint(2, "version")
    random = r.take(32, "random")
    session_id = r.vector(1, "session id")
    if len(session_id) > 32:
        raise ClientHelloError("session id longer than 32 bytes")
    cipher_suites = _u16_list(r.vector(2, "cipher suites"), "cipher suites")
    compression = r.vector(1, "compression methods")
    extensions: list[Extension] = []
    if not r.done():
        # Inline, not through _Reader: a hello has a dozen or more extensions,
        # and this loop was half of the parsing time.
        block = r.vector(2, "extensions")
        pos, size = 0, len(block)
        while pos < size:
            if pos + 4 > size:
                raise ClientHelloError("ClientHello truncated in extension header")
            end = pos + 4 + ((block[pos + 2] << 8) | block[pos + 3])
            if end > size:
                raise ClientHelloError("ClientHello truncated in extension")
            extensions.append(Extension((block[pos] << 8) | block[pos + 1], block[pos + 4 : end]))
            pos = end
    d = _decode_extensions(extensions)
    return ClientHello(
        record_version=record_version,
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=cipher_suites,
        compression_methods=compression,
        extensions=tuple(extensions),
        server_name=d.server_name,
        supported_versions=d.supported_versions,
        supported_groups=d.supported_groups,
        key_share_groups=d.key_share_groups,
        signature_algorithms=d.signature_algorithms,
        alpn=d.alpn,
        ec_point_formats=d.ec_point_formats,
    )


@dataclass(slots=True)
class _Decoded:
    server_name: str | None = None
    supported_versions: tuple[int, ...] = ()
    supported_groups: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    alpn: tuple[bytes, ...] = ()
    ec_point_formats: tuple[int, ...] = ()


def _decode_extensions(extensions: list[Extension]) -> _Decoded:
    out = _Decoded()
    for ext in extensions:
        r = _Reader(ext.data)
        if ext.type == EXT_SERVER_NAME and ext.data:
            names = _Reader(r.vector(2, "server_name"))
            while not names.done():
                kind = names.uint(1, "server_name")
                name = names.vector(2, "server_name")
                if kind == 0 and out.server_name is None:
                    out.server_name = name.decode("ascii", "replace")
        elif ext.type == EXT_SUPPORTED_VERSIONS:
            out.supported_versions = _u16_list(r.vector(1, "supported_versions"), "versions")
        elif ext.type == EXT_SUPPORTED_GROUPS:
            out.supported_groups = _u16_list(r.vector(2, "supported_groups"), "groups")
        elif ext.type == EXT_SIGNATURE_ALGORITHMS:
            out.signature_algorithms = _u16_list(
                r.vector(2, "signature_algorithms"), "signature algorithms"
            )
        elif ext.type == EXT_EC_POINT_FORMATS:
            out.ec_point_formats = tuple(r.vector(1, "ec_point_formats"))
        elif ext.type == EXT_ALPN:
            protocols = _Reader(r.vector(2, "alpn"))
            names_list = []
            while not protocols.done():
                names_list.append(protocols.vector(1, "alpn"))
            out.alpn = tuple(names_list)
        elif ext.type == EXT_KEY_SHARE and ext.data:
            shares = _Reader(r.vector(2, "key_share"))
            groups = []
            while not shares.done():
                groups.append(shares.uint(2, "key_share"))
                shares.vector(2, "key_share")
            out.key_share_groups = tuple(groups)
    return out


class ClientHelloParser:
    """Incremental: feed the client's first bytes; a ClientHello comes out.

    Args:
        limit: the most record bytes to hold (:data:`MAX_CLIENT_HELLO`).
    """

    __slots__ = ("_buf", "_handshake", "_limit", "_record_version", "result")

    def __init__(self, limit: int = MAX_CLIENT_HELLO) -> None:
        self._buf = bytearray()
        self._handshake = bytearray()
        self._limit = limit
        self._record_version = 0
        self.result: ClientHello | None = None
        """The ClientHello, once complete."""

    def feed(self, data: bytes) -> ClientHello | None:
        """Add bytes; return the ClientHello once it is complete, else None.

        Bytes after the ClientHello's last record are ignored.

        Raises:
            ClientHelloError: not a TLS handshake record, not a ClientHello,
                malformed, or over the limit.
        """
        if self.result is not None:
            return self.result
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
                if self._handshake[0] != _CLIENT_HELLO:
                    raise ClientHelloError(
                        f"the first handshake message is not a ClientHello "
                        f"(type {self._handshake[0]})"
                    )
                needed = 4 + int.from_bytes(self._handshake[1:4], "big")
                if needed > self._limit:
                    raise ClientHelloError(f"ClientHello of {needed} bytes is over the limit")
                if len(self._handshake) >= needed:
                    body = bytes(self._handshake[4:needed])
                    self.result = _parse_body(self._record_version, body)
                    self._buf.clear()
                    self._handshake.clear()
                    return self.result
        if len(self._buf) + len(self._handshake) > self._limit:
            raise ClientHelloError("ClientHello over the limit")
        return None


def parse_client_hello(records: bytes) -> ClientHello:
    """Parse a whole ClientHello (its TLS records).

    Raises:
        ClientHelloError: incomplete or malformed.
    """
    result = ClientHelloParser().feed(records)
    if result is None:
        raise ClientHelloError("ClientHello incomplete")
    return result
