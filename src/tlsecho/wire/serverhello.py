"""Sans-IO: what a server's first flight says in clear text (the probe's side
of :mod:`tlsecho.wire.clienthello`).

Fed every byte the server sent during a handshake, :func:`parse_server_flight`
finds the ServerHello (and a HelloRetryRequest before it), the negotiated
version, suite and key-exchange group (TLS 1.3: the ServerHello's key_share;
TLS 1.2: the ServerKeyExchange's named curve) and the JA3S fingerprint
(Salesforce's, BSD). Only :class:`ClientHelloError` escapes (a malformed
flight), never more than the bytes given are held.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tlsecho.wire.tlsext import ClientHelloError, Ext, vector
from tlsecho.wire.tlsnames import CIPHER_SUITES, GROUPS, name, version_name

__all__ = ["HRR_RANDOM", "ServerFlight", "parse_server_flight"]

#: A ServerHello with this random is a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_HANDSHAKE, _CCS = 22, 20
_SERVER_HELLO, _SERVER_KEY_EXCHANGE, _SERVER_HELLO_DONE = 2, 12, 14


@dataclass(frozen=True, slots=True)
class ServerFlight:
    """What the server chose, as it said it in clear text."""

    legacy_version: int
    version: int
    """The negotiated version (supported_versions in TLS 1.3, else legacy)."""
    cipher_suite: int
    extension_types: tuple[int, ...]
    group: int | None
    """The key-exchange group (None: not in clear text, e.g. finite-field DHE)."""
    hello_retry: bool
    """The server sent a HelloRetryRequest first."""
    retry_group: int | None = None
    """The group the HelloRetryRequest asked for."""

    @property
    def group_name(self) -> str | None:
        return name(GROUPS, self.group) if self.group is not None else None

    @property
    def cipher_name(self) -> str:
        return name(CIPHER_SUITES, self.cipher_suite)

    @property
    def version_name(self) -> str:
        return version_name(self.version)

    def ja3s(self) -> str:
        """The JA3S string: version, suite, extension types (decimal)."""
        exts = "-".join(str(t) for t in self.extension_types)
        return f"{self.legacy_version},{self.cipher_suite},{exts}"

    def ja3s_hash(self) -> str:
        return hashlib.md5(self.ja3s().encode(), usedforsecurity=False).hexdigest()


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    """The handshake messages in the plaintext records of ``data``, up to
    the first encrypted one (after which nothing is in clear text)."""
    stream = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        ctype = data[pos]
        size = (data[pos + 3] << 8) | data[pos + 4]
        if ctype == _HANDSHAKE:
            stream += data[pos + 5 : pos + 5 + size]
        elif ctype != _CCS:
            break  # application data (TLS 1.3's encrypted records) or an alert
        pos += 5 + size
    out: list[tuple[int, bytes]] = []
    i = 0
    while i + 4 <= len(stream):
        length = int.from_bytes(stream[i + 1 : i + 4], "big")
        if i + 4 + length > len(stream):
            break
        out.append((stream[i], bytes(stream[i + 4 : i + 4 + length])))
        i += 4 + length
    return out


def _server_hello(body: bytes) -> tuple[int, bytes, int, dict[int, bytes], list[int]]:
    if len(body) < 35:
        raise ClientHelloError("ServerHello truncated")
    legacy = (body[0] << 8) | body[1]
    random = body[2:34]
    _, pos = vector(body, 34, 1, "ServerHello session id")
    if pos + 3 > len(body):
        raise ClientHelloError("ServerHello truncated")
    suite = (body[pos] << 8) | body[pos + 1]
    pos += 3  # the suite and the compression method
    exts: dict[int, bytes] = {}
    order: list[int] = []
    if pos < len(body):
        block, _ = vector(body, pos, 2, "ServerHello extensions")
        i = 0
        while i + 4 <= len(block):
            t = (block[i] << 8) | block[i + 1]
            data, i = vector(block, i + 2, 2, "ServerHello extension")
            exts.setdefault(t, data)
            order.append(t)
    return legacy, random, suite, exts, order


def _u16(data: bytes | None) -> int | None:
    return (data[0] << 8) | data[1] if data is not None and len(data) >= 2 else None


def parse_server_flight(data: bytes) -> ServerFlight | None:
    """The server's choices in ``data`` (what it sent during the handshake),
    or None when there is no ServerHello in it.

    Raises:
        ClientHelloError: a malformed ServerHello.
    """
    retry_group: int | None = None
    hello_retry = False
    found: ServerFlight | None = None
    for kind, body in _messages(data):
        if kind == _SERVER_HELLO:
            legacy, random, suite, exts, order = _server_hello(body)
            if random == HRR_RANDOM:
                hello_retry, retry_group = True, _u16(exts.get(Ext.KEY_SHARE))
                continue
            version = _u16(exts.get(Ext.SUPPORTED_VERSIONS)) or legacy
            group = _u16(exts.get(Ext.KEY_SHARE))
            found = ServerFlight(
                legacy, version, suite, tuple(order), group, hello_retry, retry_group
            )
            if version >= 0x0304:
                return found  # the rest is encrypted
        elif kind == _SERVER_KEY_EXCHANGE and found is not None:
            # TLS 1.2 ECDHE: curve_type 3 (named_curve), then the group.
            if len(body) >= 3 and body[0] == 3:
                found = ServerFlight(
                    found.legacy_version,
                    found.version,
                    found.cipher_suite,
                    found.extension_types,
                    (body[1] << 8) | body[2],
                    found.hello_retry,
                    found.retry_group,
                )
            return found
        elif kind == _SERVER_HELLO_DONE:
            break
    return found
