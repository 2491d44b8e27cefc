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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from tlsecho.tlsext import (
    DECODERS,
    EXT_ALPN,
    EXT_COMPRESS_CERTIFICATE,
    EXT_EARLY_DATA,
    EXT_EC_POINT_FORMATS,
    EXT_ENCRYPTED_CLIENT_HELLO,
    EXT_EXTENDED_MASTER_SECRET,
    EXT_KEY_SHARE,
    EXT_PADDING,
    EXT_POST_HANDSHAKE_AUTH,
    EXT_PRE_SHARED_KEY,
    EXT_PSK_KEY_EXCHANGE_MODES,
    EXT_RECORD_SIZE_LIMIT,
    EXT_RENEGOTIATION_INFO,
    EXT_SCT,
    EXT_SERVER_NAME,
    EXT_SESSION_TICKET,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_SIGNATURE_ALGORITHMS_CERT,
    EXT_STATUS_REQUEST,
    EXT_SUPPORTED_GROUPS,
    EXT_SUPPORTED_VERSIONS,
    ClientHelloError,
    u16_list,
    vector,
)
from tlsecho.tlsnames import (
    CIPHER_SUITES,
    EXTENSIONS,
    GROUPS,
    SIGNATURE_SCHEMES,
    is_grease,
    name,
    names,
    version_name,
)

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

_VERSION_CODES = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
_EXT_HEADER = struct.Struct(">HH").unpack_from
_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))


class Extension(NamedTuple):
    """One extension, as offered (a named tuple: made ~16 times per hello,
    where a frozen dataclass costs a microsecond each)."""

    type: int
    data: bytes

    @property
    def name(self) -> str:
        """Its IANA name (``GREASE``, or its hex when unknown)."""
        return name(EXTENSIONS, self.type)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a client offered, in the order it offered it.

    GREASE values (RFC 8701) are kept where they were sent; :func:`is_grease`
    tells them apart, the fingerprints leave them out.
    """

    record_version: int
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extension_types: tuple[int, ...]
    """Extension types in the order sent, GREASE included."""
    extension_data: tuple[bytes, ...]
    """Each extension's body, in the same order."""
    decoded: Mapping[int, Any]
    """The decoded contents of the extensions this module understands, by
    type (the first of a repeated type); read them through the properties."""

    @property
    def extensions(self) -> tuple[Extension, ...]:
        """Every extension in the order sent (made on demand: a named tuple
        each costs more than the rest of the parsing)."""
        return tuple(map(Extension, self.extension_types, self.extension_data))

    # -- decoded extensions ---------------------------------------------------------
    @property
    def server_name(self) -> str | None:
        """The first host_name of server_name (SNI)."""
        value: str | None = self.decoded.get(EXT_SERVER_NAME)
        return value

    @property
    def supported_versions(self) -> tuple[int, ...]:
        return self._ints(EXT_SUPPORTED_VERSIONS)

    @property
    def supported_groups(self) -> tuple[int, ...]:
        return self._ints(EXT_SUPPORTED_GROUPS)

    @property
    def key_share_groups(self) -> tuple[int, ...]:
        """The groups the client sent a key share for, in order."""
        return self._ints(EXT_KEY_SHARE)

    @property
    def signature_algorithms(self) -> tuple[int, ...]:
        return self._ints(EXT_SIGNATURE_ALGORITHMS)

    @property
    def signature_algorithms_cert(self) -> tuple[int, ...]:
        return self._ints(EXT_SIGNATURE_ALGORITHMS_CERT)

    @property
    def alpn(self) -> tuple[bytes, ...]:
        """The ALPN protocols offered, in order."""
        value: tuple[bytes, ...] = self.decoded.get(EXT_ALPN, ())
        return value

    @property
    def ec_point_formats(self) -> tuple[int, ...]:
        return self._ints(EXT_EC_POINT_FORMATS)

    @property
    def psk_key_exchange_modes(self) -> tuple[int, ...]:
        """0: psk_ke, 1: psk_dhe_ke."""
        return self._ints(EXT_PSK_KEY_EXCHANGE_MODES)

    @property
    def compress_certificate(self) -> tuple[int, ...]:
        """Certificate compression algorithms (1 zlib, 2 brotli, 3 zstd)."""
        return self._ints(EXT_COMPRESS_CERTIFICATE)

    @property
    def record_size_limit(self) -> int | None:
        value: int | None = self.decoded.get(EXT_RECORD_SIZE_LIMIT)
        return value

    @property
    def status_request(self) -> int | None:
        """The certificate status type asked for (1: OCSP), or None."""
        value: int | None = self.decoded.get(EXT_STATUS_REQUEST)
        return value

    @property
    def session_ticket(self) -> int | None:
        """The length of the ticket offered (0: the client asks for one), or
        None without the extension."""
        value: int | None = self.decoded.get(EXT_SESSION_TICKET)
        return value

    @property
    def padding(self) -> int | None:
        """The padding extension's length, or None."""
        value: int | None = self.decoded.get(EXT_PADDING)
        return value

    @property
    def renegotiation_info(self) -> bool:
        return EXT_RENEGOTIATION_INFO in self.decoded

    @property
    def pre_shared_key(self) -> bool:
        """A PSK (a TLS 1.3 resumption or external PSK) is offered."""
        return EXT_PRE_SHARED_KEY in self.decoded

    @property
    def early_data(self) -> bool:
        return EXT_EARLY_DATA in self.decoded

    @property
    def extended_master_secret(self) -> bool:
        return EXT_EXTENDED_MASTER_SECRET in self.decoded

    @property
    def signed_certificate_timestamp(self) -> bool:
        return EXT_SCT in self.decoded

    @property
    def encrypted_client_hello(self) -> bool:
        return EXT_ENCRYPTED_CLIENT_HELLO in self.decoded

    @property
    def post_handshake_auth(self) -> bool:
        return EXT_POST_HANDSHAKE_AUTH in self.decoded

    def _ints(self, ext_type: int) -> tuple[int, ...]:
        value: tuple[int, ...] = self.decoded.get(ext_type, ())
        return value

    # -- JA3 ------------------------------------------------------------------------
    def ja3(self, *, sort_extensions: bool = False) -> str:
        """The JA3 string (JA3N with ``sort_extensions``): decimal fields,
        GREASE removed."""
        exts = [t for t in self.extension_types if t not in _GREASE]
        if sort_extensions:
            exts.sort()
        fields = [
            str(self.legacy_version),
            "-".join(str(c) for c in self.cipher_suites if c not in _GREASE),
            "-".join(str(t) for t in exts),
            "-".join(str(g) for g in self.supported_groups if g not in _GREASE),
            "-".join(str(f) for f in self.ec_point_formats),
        ]
        return ",".join(fields)

    def ja3_hash(self, *, sort_extensions: bool = False) -> str:
        """MD5 of :meth:`ja3` (the usual JA3 fingerprint)."""
        text = self.ja3(sort_extensions=sort_extensions).encode()
        return hashlib.md5(text, usedforsecurity=False).hexdigest()

    # -- JA4 ------------------------------------------------------------------------
    def _ja4_parts(self) -> tuple[str, str, str]:
        versions = [v for v in self.supported_versions if v not in _GREASE]
        version = max(versions) if versions else self.legacy_version
        ciphers = sorted(c for c in self.cipher_suites if c not in _GREASE)
        types = [t for t in self.extension_types if t not in _GREASE]
        sni = "d" if EXT_SERVER_NAME in types else "i"
        a = (
            f"t{_VERSION_CODES.get(version, '00')}{sni}"
            f"{min(len(ciphers), 99):02d}{min(len(types), 99):02d}{_alpn_code(self.alpn)}"
        )
        exts = sorted(t for t in types if t != EXT_SERVER_NAME and t != EXT_ALPN)
        # bytes.hex(",", 2) writes "1301,1302" in C: three times faster than
        # formatting each value.
        cipher_text = _hex_list(ciphers)
        ext_text = _hex_list(exts)
        sigs = self.signature_algorithms
        if sigs:
            ext_text = f"{ext_text}_{_hex_list(sigs)}"
        return a, cipher_text, ext_text

    def ja4(self) -> str:
        """JA4: ``a_b_c`` (version, SNI, counts, ALPN; hashed sorted ciphers;
        hashed sorted extensions and signature algorithms)."""
        a, cipher_text, ext_text = self._ja4_parts()
        return f"{a}_{_hash12(cipher_text)}_{_hash12(ext_text)}"

    def ja4_r(self) -> str:
        """JA4_r: JA4 with the lists in clear instead of hashed."""
        a, cipher_text, ext_text = self._ja4_parts()
        return f"{a}_{cipher_text}_{ext_text}"

    # -- report -----------------------------------------------------------------------
    def log_fields(self) -> dict[str, Any]:
        """What a connection's JSON log record says about its ClientHello."""
        return {
            "ja3": self.ja3(),
            "ja3_hash": self.ja3_hash(),
            "ja4_r": self.ja4_r(),
            "offered_versions": [version_name(v) for v in self.supported_versions],
            "offered_cipher_suites": names(CIPHER_SUITES, self.cipher_suites),
            "offered_groups": names(GROUPS, self.supported_groups),
            "offered_key_share_groups": names(GROUPS, self.key_share_groups),
            "offered_signature_algorithms": names(SIGNATURE_SCHEMES, self.signature_algorithms),
            "offered_alpn": [a.decode("ascii", "backslashreplace") for a in self.alpn],
        }

    def report(self) -> dict[str, Any]:
        """Everything offered, with IANA names, and the fingerprints: a JSON
        object (``--mode hello``, the JSON log, golden files)."""
        return {
            "record_version": version_name(self.record_version),
            "legacy_version": version_name(self.legacy_version),
            "supported_versions": [version_name(v) for v in self.supported_versions],
            "session_id_length": len(self.session_id),
            "cipher_suites": names(CIPHER_SUITES, self.cipher_suites),
            "compression_methods": list(self.compression_methods),
            "extensions": [
                {"type": e.type, "name": e.name, "length": len(e.data)} for e in self.extensions
            ],
            "server_name": self.server_name,
            "alpn": [a.decode("ascii", "backslashreplace") for a in self.alpn],
            "supported_groups": names(GROUPS, self.supported_groups),
            "key_share_groups": names(GROUPS, self.key_share_groups),
            "signature_algorithms": names(SIGNATURE_SCHEMES, self.signature_algorithms),
            "signature_algorithms_cert": names(SIGNATURE_SCHEMES, self.signature_algorithms_cert),
            "ec_point_formats": list(self.ec_point_formats),
            "psk_key_exchange_modes": list(self.psk_key_exchange_modes),
            "pre_shared_key": self.pre_shared_key,
            "early_data": self.early_data,
            "session_ticket": self.session_ticket,
            "extended_master_secret": self.extended_master_secret,
            "renegotiation_info": self.renegotiation_info,
            "status_request": self.status_request,
            "signed_certificate_timestamp": self.signed_certificate_timestamp,
            "compress_certificate": list(self.compress_certificate),
            "record_size_limit": self.record_size_limit,
            "encrypted_client_hello": self.encrypted_client_hello,
            "padding": self.padding,
            "post_handshake_auth": self.post_handshake_auth,
            "ja3": self.ja3(),
            "ja3_hash": self.ja3_hash(),
            "ja3n_hash": self.ja3_hash(sort_extensions=True),
            "ja4": self.ja4(),
            "ja4_r": self.ja4_r(),
        }


def _hex_list(values: list[int] | tuple[int, ...]) -> str:
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


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


def _parse_body(record_version: int, body: bytes) -> ClientHello:
    if len(body) < 35:
        raise ClientHelloError("ClientHello truncated in random")
    legacy_version = (body[0] << 8) | body[1]
    random = body[2:34]
    session_id, pos = vector(body, 34, 1, "session id")
    if len(session_id) > 32:
        raise ClientHelloError("session id longer than 32 bytes")
    suites, pos = vector(body, pos, 2, "cipher suites")
    cipher_suites = u16_list(suites, "cipher suites")
    compression, pos = vector(body, pos, 1, "compression methods")
    types: list[int] = []
    datas: list[bytes] = []
    decoded: dict[int, Any] = {}
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
            data = block[i + 4 : end]
            types.append(ext_type)
            datas.append(data)
            decoder = DECODERS.get(ext_type)
            if decoder is not None and ext_type not in decoded:
                decoded[ext_type] = decoder(data)
            i = end
    return ClientHello(
        record_version,
        legacy_version,
        random,
        session_id,
        cipher_suites,
        compression,
        tuple(types),
        tuple(datas),
        decoded,
    )


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
