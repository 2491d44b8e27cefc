"""A parsed ClientHello, frozen: what it offered (IANA names, GREASE
marked), its fingerprints (JA3, JA3N, JA4, JA4_r), its log fields and its
report. Built by :mod:`tlsecho.wire.clienthello`'s parser; sans-IO.

JA4 follows FoxIO's specification (``technical_details/JA4.md``, BSD-3). JA3
follows Salesforce's: GREASE values (RFC 8701) removed everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tlsecho.wire.fingerprints import alpn_code, cached_ja4, hash12, hex_list, ja4_key
from tlsecho.wire.tlsext import DECODERS, ClientHelloError, Ext
from tlsecho.wire.tlsnames import (
    CIPHER_SUITES,
    EXTENSIONS,
    GREASE,
    GROUPS,
    SIGNATURE_SCHEMES,
    name,
    names,
    version_name,
)

__all__ = ["ClientHello", "Extension"]

_VERSION_CODES = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
_UNSEEN, _ABSENT, _MALFORMED = object(), object(), object()


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
    _cache: dict[int, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _value(self, ext_type: int, default: Any = None) -> Any:
        """The decoded body of the first extension of ``ext_type`` (decoded on
        first use: most connections only need the few that JA4 reads)."""
        cache = self._cache
        value = cache.get(ext_type, _UNSEEN)
        if value is _UNSEEN:
            try:
                data = self.extension_data[self.extension_types.index(ext_type)]
            except ValueError:
                value = _ABSENT
            else:
                try:
                    value = DECODERS[ext_type](data)
                except ClientHelloError:
                    value = _MALFORMED
            cache[ext_type] = value
        return default if value is _ABSENT or value is _MALFORMED else value

    @property
    def malformed(self) -> tuple[int, ...]:
        """Extensions sent whose body does not decode (read as absent, as
        Wireshark's "[Malformed]"): the framing was sound, the contents not."""
        out = []
        for t in dict.fromkeys(self.extension_types):
            if t in DECODERS and self._value(t, _MALFORMED) is _MALFORMED:
                out.append(t)
        return tuple(out)

    @property
    def extensions(self) -> tuple[Extension, ...]:
        """Every extension in the order sent (made on demand: a named tuple
        each costs more than the rest of the parsing)."""
        return tuple(map(Extension, self.extension_types, self.extension_data))

    # -- decoded extensions ---------------------------------------------------------
    @property
    def server_name(self) -> str | None:
        """The first host_name of server_name (SNI)."""
        value: str | None = self._value(Ext.SERVER_NAME)
        return value

    @property
    def supported_versions(self) -> tuple[int, ...]:
        return self._ints(Ext.SUPPORTED_VERSIONS)

    @property
    def supported_groups(self) -> tuple[int, ...]:
        return self._ints(Ext.SUPPORTED_GROUPS)

    @property
    def key_share_groups(self) -> tuple[int, ...]:
        """The groups the client sent a key share for, in order."""
        return self._ints(Ext.KEY_SHARE)

    @property
    def signature_algorithms(self) -> tuple[int, ...]:
        return self._ints(Ext.SIGNATURE_ALGORITHMS)

    @property
    def signature_algorithms_cert(self) -> tuple[int, ...]:
        return self._ints(Ext.SIGNATURE_ALGORITHMS_CERT)

    @property
    def alpn(self) -> tuple[bytes, ...]:
        """The ALPN protocols offered, in order."""
        value: tuple[bytes, ...] = self._value(Ext.ALPN, ())
        return value

    @property
    def ec_point_formats(self) -> tuple[int, ...]:
        return self._ints(Ext.EC_POINT_FORMATS)

    @property
    def psk_key_exchange_modes(self) -> tuple[int, ...]:
        """0: psk_ke, 1: psk_dhe_ke."""
        return self._ints(Ext.PSK_KEY_EXCHANGE_MODES)

    @property
    def compress_certificate(self) -> tuple[int, ...]:
        """Certificate compression algorithms (1 zlib, 2 brotli, 3 zstd)."""
        return self._ints(Ext.COMPRESS_CERTIFICATE)

    @property
    def record_size_limit(self) -> int | None:
        value: int | None = self._value(Ext.RECORD_SIZE_LIMIT)
        return value

    @property
    def status_request(self) -> int | None:
        """The certificate status type asked for (1: OCSP), or None."""
        value: int | None = self._value(Ext.STATUS_REQUEST)
        return value

    @property
    def session_ticket(self) -> int | None:
        """The length of the ticket offered (0: the client asks for one), or
        None without the extension."""
        value: int | None = self._value(Ext.SESSION_TICKET)
        return value

    @property
    def padding(self) -> int | None:
        """The padding extension's length, or None."""
        value: int | None = self._value(Ext.PADDING)
        return value

    @property
    def renegotiation_info(self) -> bool:
        return Ext.RENEGOTIATION_INFO in self.extension_types

    @property
    def pre_shared_key(self) -> bool:
        """A PSK (a TLS 1.3 resumption or external PSK) is offered."""
        return Ext.PRE_SHARED_KEY in self.extension_types

    @property
    def early_data(self) -> bool:
        return Ext.EARLY_DATA in self.extension_types

    @property
    def extended_master_secret(self) -> bool:
        return Ext.EXTENDED_MASTER_SECRET in self.extension_types

    @property
    def signed_certificate_timestamp(self) -> bool:
        return Ext.SCT in self.extension_types

    @property
    def encrypted_client_hello(self) -> bool:
        return Ext.ENCRYPTED_CLIENT_HELLO in self.extension_types

    @property
    def post_handshake_auth(self) -> bool:
        return Ext.POST_HANDSHAKE_AUTH in self.extension_types

    def _ints(self, ext_type: int) -> tuple[int, ...]:
        value: tuple[int, ...] = self._value(ext_type, ())
        return value

    # -- JA3 ------------------------------------------------------------------------
    def ja3(self, *, sort_extensions: bool = False) -> str:
        """The JA3 string (JA3N with ``sort_extensions``): decimal fields,
        GREASE removed."""
        exts = [t for t in self.extension_types if t not in GREASE]
        if sort_extensions:
            exts.sort()
        fields = [
            str(self.legacy_version),
            "-".join(str(c) for c in self.cipher_suites if c not in GREASE),
            "-".join(str(t) for t in exts),
            "-".join(str(g) for g in self.supported_groups if g not in GREASE),
            "-".join(str(f) for f in self.ec_point_formats),
        ]
        return ",".join(fields)

    def ja3_hash(self, *, sort_extensions: bool = False) -> str:
        """MD5 of :meth:`ja3` (the usual JA3 fingerprint)."""
        text = self.ja3(sort_extensions=sort_extensions).encode()
        return hashlib.md5(text, usedforsecurity=False).hexdigest()

    # -- JA4 ------------------------------------------------------------------------
    def _ja4_both(self) -> tuple[str, str]:
        key = ja4_key(
            self.legacy_version, self.cipher_suites, self.extension_types, self.extension_data
        )
        return cached_ja4(key, self._ja4_compute)

    def _ja4_compute(self) -> tuple[str, str]:
        versions = [v for v in self.supported_versions if v not in GREASE]
        version = max(versions) if versions else self.legacy_version
        ciphers = sorted(c for c in self.cipher_suites if c not in GREASE)
        types = [t for t in self.extension_types if t not in GREASE]
        sni = "d" if Ext.SERVER_NAME in types else "i"
        a = (
            f"t{_VERSION_CODES.get(version, '00')}{sni}"
            f"{min(len(ciphers), 99):02d}{min(len(types), 99):02d}{alpn_code(self.alpn)}"
        )
        exts = sorted(t for t in types if t != Ext.SERVER_NAME and t != Ext.ALPN)
        # bytes.hex(",", 2) writes "1301,1302" in C: three times faster than
        # formatting each value.
        cipher_text = hex_list(ciphers)
        ext_text = hex_list(exts)
        sigs = self.signature_algorithms
        if sigs:
            ext_text = f"{ext_text}_{hex_list(sigs)}"
        ja4 = f"{a}_{hash12(cipher_text)}_{hash12(ext_text)}"
        return ja4, f"{a}_{cipher_text}_{ext_text}"

    def ja4(self) -> str:
        """JA4: ``a_b_c`` (version, SNI, counts, ALPN; hashed sorted ciphers;
        hashed sorted extensions and signature algorithms)."""
        return self._ja4_both()[0]

    def ja4_r(self) -> str:
        """JA4_r: JA4 with the lists in clear instead of hashed."""
        return self._ja4_both()[1]

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
            "malformed_extensions": names(EXTENSIONS, self.malformed),
            "ja3": self.ja3(),
            "ja3_hash": self.ja3_hash(),
            "ja3n_hash": self.ja3_hash(sort_extensions=True),
            "ja4": self.ja4(),
            "ja4_r": self.ja4_r(),
        }
