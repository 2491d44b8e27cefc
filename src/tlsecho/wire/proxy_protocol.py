"""Sans-IO parser and builder for the HAProxy PROXY protocol, v1 and v2.

Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

Feed bytes with :meth:`ProxyParser.feed`; it returns how many it consumed, so
the caller can leave the bytes after the header (the TLS ClientHello) where
they are. The only exception that leaves this module's parser is
:class:`ProxyProtocolError`. Caps: a v1 header is at most 107 bytes (section
2.1); a v2 header is 16 bytes plus the length it declares (at most 65535).
This module imports nothing from the package.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "V1_MAX",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyParser",
    "ProxyProtocolError",
    "build_header",
    "build_v1",
    "build_v2",
]

V1_MAX = 107
V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = 16
# Address block sizes by family nibble (section 2.2).
_AF_INET, _AF_INET6, _AF_UNIX = 1, 2, 3
_ADDR_LEN = {_AF_INET: 12, _AF_INET6: 36, _AF_UNIX: 216}
TLV_NAMES = {
    0x01: "alpn",
    0x02: "authority",
    0x03: "crc32c",
    0x04: "noop",
    0x05: "unique_id",
    0x20: "ssl",
    0x30: "netns",
}

# PP2_TYPE_SSL's sub-TLVs and client bits (section 2.2.5).
SSL_SUBTLV_NAMES = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg", 0x25: "key_alg"}
_SSL_CLIENT_BITS = ((0x01, "ssl"), (0x02, "cert_conn"), (0x04, "cert_sess"))

Accept = Literal["v1", "v2", "any"]
Address = tuple[str, int]


class ProxyProtocolError(Exception):
    """The bytes are not a valid PROXY header (the peer's fault)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed PROXY header."""

    version: int
    """1 or 2."""
    command: Literal["PROXY", "LOCAL"]
    """``LOCAL``: the proxy's own connection (health check); use the real peer."""
    family: str
    """``TCP4``, ``TCP6``, ``UNIX``, ``UNKNOWN`` (v1) or ``UNSPEC`` (v2)."""
    source: Address | None = None
    """The original client's address, when the header carries one."""
    destination: Address | None = None
    """The address the client connected to."""
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())
    """v2 type-length-value extensions, in order."""
    length: int = 0
    """Size of the whole header in bytes."""

    def tlv_summary(self) -> str:
        """``authority=example.test,alpn=h2`` for the logs (binary values as hex)."""
        parts = []
        for t, v in self.tlvs:
            name = TLV_NAMES.get(t, f"0x{t:02x}")
            text = v.decode("ascii", "replace") if name in ("authority", "alpn") else v.hex()
            parts.append(f"{name}={text}")
        return ",".join(parts)

    def report(self) -> dict[str, Any]:
        """The header as a JSON object; TLVs named and decoded (text where
        the specification says text, the SSL TLV's fields and sub-TLVs)."""
        return {
            "version": self.version,
            "command": self.command,
            "family": self.family,
            "source": _address_text(self.source),
            "destination": _address_text(self.destination),
            "tlvs": [_tlv_report(t, v) for t, v in self.tlvs],
        }

    def describe(self, source: str, via: str) -> str:
        """``PROXY v2 PROXY TCP4 from 192.0.2.1:5000 via 127.0.0.1:4000 tlvs=...``
        for the debug log, given the source and the TCP peer as text."""
        tlvs = self.tlv_summary()
        return f"PROXY v{self.version} {self.command} {self.family} from {source} via {via}" + (
            f" tlvs={tlvs}" if tlvs else ""
        )


class ProxyParser:
    """Incremental parser for one PROXY header.

    Args:
        accept: which versions to accept: ``v1``, ``v2`` or ``any``.
    """

    __slots__ = ("_accept", "_buf", "_scanned", "_version", "header")

    def __init__(self, accept: Accept = "any") -> None:
        if accept not in ("v1", "v2", "any"):
            raise ValueError(f"accept must be v1, v2 or any, not {accept!r}")
        self._accept = accept
        self._buf = bytearray()
        self._scanned = 0  # v1: bytes already searched for CRLF
        self._version = 0
        self.header: ProxyHeader | None = None
        """The header, once complete."""

    def feed(self, data: bytes) -> int:
        """Feed bytes; return how many belong to the header.

        All of ``data`` is consumed while the header is incomplete; once it
        completes, the bytes after it are not consumed (the return value is
        smaller than ``len(data)``) and :attr:`header` is set.

        Raises:
            ProxyProtocolError: not a PROXY header, malformed, or too long.
        """
        if self.header is not None:
            return 0
        before = len(self._buf)
        self._buf += data
        if not self._version:
            self._detect()
            if not self._version:
                return len(data)
        end = self._parse_v1() if self._version == 1 else self._parse_v2()
        if end is None:
            return len(data)
        del self._buf[end:]
        return end - before

    def _detect(self) -> None:
        buf = bytes(self._buf[: len(V2_SIGNATURE)])
        v1_ok = self._accept != "v2" and V1_PREFIX.startswith(buf[: len(V1_PREFIX)])
        v2_ok = self._accept != "v1" and V2_SIGNATURE.startswith(buf)
        if v1_ok and len(buf) >= len(V1_PREFIX):
            self._version = 1
        elif v2_ok and len(buf) == len(V2_SIGNATURE):
            self._version = 2
        elif not v1_ok and not v2_ok:
            want = {"v1": "a PROXY v1", "v2": "a PROXY v2", "any": "a PROXY"}[self._accept]
            raise ProxyProtocolError(f"not {want} header (starts with {buf[:8]!r})")

    # -- v1 -------------------------------------------------------------------
    def _parse_v1(self) -> int | None:
        buf = self._buf
        i = buf.find(b"\r\n", max(0, self._scanned - 1))
        if i < 0:
            self._scanned = len(buf)
            if len(buf) >= V1_MAX:
                raise ProxyProtocolError(f"PROXY v1 header longer than {V1_MAX} bytes")
            return None
        end = i + 2
        if end > V1_MAX:
            raise ProxyProtocolError(f"PROXY v1 header longer than {V1_MAX} bytes")
        self.header = _v1_header(bytes(buf[:i]), end)
        return end

    # -- v2 -------------------------------------------------------------------
    def _parse_v2(self) -> int | None:
        buf = self._buf
        if len(buf) < _V2_FIXED:
            return None
        ver_cmd, fam, length = struct.unpack_from("!BBH", buf, 12)
        end: int = _V2_FIXED + length
        if ver_cmd >> 4 != 2:
            raise ProxyProtocolError(f"PROXY v2 header with version {ver_cmd >> 4}")
        if len(buf) < end:
            return None
        self.header = _v2_header(ver_cmd & 0xF, fam, bytes(buf[_V2_FIXED:end]), end)
        return end


def _port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[:1] == b"0"):
        raise ProxyProtocolError(f"PROXY v1 header: bad port {text!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"PROXY v1 header: bad port {text!r}")
    return port


def _v1_header(line: bytes, length: int) -> ProxyHeader:
    parts = line.split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        # "the receiver must ignore anything presented before the CRLF"
        return ProxyHeader(1, "PROXY", "UNKNOWN", length=length)
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError(f"PROXY v1 header: malformed line {line[:60]!r}")
    family = parts[1].decode()
    kind = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
    try:
        src = kind(parts[2].decode("ascii"))
        dst = kind(parts[3].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise ProxyProtocolError(
            f"PROXY v1 header: bad {family} address in {line[:60]!r}"
        ) from None
    return ProxyHeader(
        1,
        "PROXY",
        family,
        (str(src), _port(parts[4])),
        (str(dst), _port(parts[5])),
        length=length,
    )


def _v2_header(command: int, fam: int, body: bytes, length: int) -> ProxyHeader:
    if command not in (0, 1):
        raise ProxyProtocolError(f"PROXY v2 header with unknown command {command}")
    family, proto = fam >> 4, fam & 0xF
    if family > _AF_UNIX or proto > 2:
        raise ProxyProtocolError(f"PROXY v2 header with unknown family/protocol 0x{fam:02x}")
    addr_len = _ADDR_LEN.get(family, 0)
    if len(body) < addr_len:
        raise ProxyProtocolError(
            f"PROXY v2 header: {len(body)} bytes cannot hold a family {family} address"
        )
    tlvs = _tlvs(body[addr_len:])
    if command == 0:
        # LOCAL: the proxy's own connection; addresses are to be ignored.
        return ProxyHeader(2, "LOCAL", "UNSPEC", tlvs=tlvs, length=length)
    src = dst = None
    name = "UNSPEC"
    if family == _AF_INET:
        s, d, sp, dp = struct.unpack_from("!4s4sHH", body)
        src, dst, name = (
            (str(ipaddress.IPv4Address(s)), sp),
            (str(ipaddress.IPv4Address(d)), dp),
            "TCP4",
        )
    elif family == _AF_INET6:
        s, d, sp, dp = struct.unpack_from("!16s16sHH", body)
        src, dst, name = (
            (str(ipaddress.IPv6Address(s)), sp),
            (str(ipaddress.IPv6Address(d)), dp),
            "TCP6",
        )
    elif family == _AF_UNIX:
        name = "UNIX"
        src = (body[:108].split(b"\0", 1)[0].decode("utf-8", "replace"), 0)
        dst = (body[108:216].split(b"\0", 1)[0].decode("utf-8", "replace"), 0)
    return ProxyHeader(2, "PROXY", name, src, dst, tlvs, length)


def _address_text(addr: Address | None) -> str | None:
    if addr is None:
        return None
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _tlv_report(t: int, v: bytes) -> dict[str, Any]:
    name = TLV_NAMES.get(t, f"0x{t:02x}")
    out: dict[str, Any] = {"type": t, "name": name}
    if name in ("authority", "alpn", "unique_id"):
        out["value"] = v.decode("utf-8", "backslashreplace")
    elif name == "ssl" and len(v) >= 5:
        client, verify = v[0], int.from_bytes(v[1:5], "big")
        out["client"] = [bit for mask, bit in _SSL_CLIENT_BITS if client & mask]
        out["verify"] = verify
        out["verified"] = verify == 0
        try:
            subs = _tlvs(v[5:])
        except ProxyProtocolError:
            subs = ()
            out["malformed"] = True
        for st, sv in subs:
            key = SSL_SUBTLV_NAMES.get(st, f"0x{st:02x}")
            out[key] = sv.decode("utf-8", "backslashreplace")
    else:
        out["value"] = v.hex()
    return out


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    out = []
    i = 0
    while i < len(data):
        if len(data) - i < 3:
            raise ProxyProtocolError("PROXY v2 header: truncated TLV")
        t, n = struct.unpack_from("!BH", data, i)
        i += 3
        if len(data) - i < n:
            raise ProxyProtocolError(f"PROXY v2 header: TLV 0x{t:02x} longer than the header")
        out.append((t, data[i : i + n]))
        i += n
    return tuple(out)


def build_v1(source: Address, destination: Address) -> bytes:
    """A v1 header for a TCP connection from ``source`` to ``destination``."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def build_v2(
    source: Address | None,
    destination: Address | None,
    *,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A v2 header: PROXY for TCP addresses, LOCAL when ``source`` is None."""
    body = b""
    if source is None or destination is None:
        ver_cmd, fam = 0x20, 0x00
    elif ":" in source[0]:
        ver_cmd, fam = 0x21, 0x21
        body = struct.pack(
            "!16s16sHH",
            ipaddress.IPv6Address(source[0]).packed,
            ipaddress.IPv6Address(destination[0]).packed,
            source[1],
            destination[1],
        )
    else:
        ver_cmd, fam = 0x21, 0x11
        body = struct.pack(
            "!4s4sHH",
            ipaddress.IPv4Address(source[0]).packed,
            ipaddress.IPv4Address(destination[0]).packed,
            source[1],
            destination[1],
        )
    for t, v in tlvs:
        body += struct.pack("!BH", t, len(v)) + v
    return V2_SIGNATURE + struct.pack("!BBH", ver_cmd, fam, len(body)) + body


def build_header(version: str, source: Address, destination: Address) -> bytes:
    """The PROXY header a client sends for its own TCP connection: ``version``
    is ``v1`` or ``v2`` (as ``--proxy-header`` takes it)."""
    return build_v1(source, destination) if version == "v1" else build_v2(source, destination)
