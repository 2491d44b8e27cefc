"""``tlsecho probe``: connect, handshake, and report what was negotiated.

Polite to any TLS server: it sends no application data, reads only to
collect TLS 1.3 session tickets, and closes with close_notify. It then
reconnects once with the session to tell whether resumption works.

TLS runs over memory BIOs, so the probe sees the server's bytes: the
ServerHello tells the key-exchange group, a HelloRetryRequest and the JA3S
(:mod:`tlsecho.wire.serverhello`), which Python's ``ssl`` does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tlsecho.client.errors import map_connect_error, map_handshake_error
from tlsecho.config import ClientConfig
from tlsecho.errors import PeerError, TlsEchoError
from tlsecho.pki.certs import CertificateInfo, describe_certificate
from tlsecho.tls import client_context
from tlsecho.wire.serverhello import parse_server_flight
from tlsecho.wire.tlsext import ClientHelloError

__all__ = ["CertInfo", "ProbeResult", "probe"]

_TICKET_WAIT = 0.3
# The server's first bytes kept for their ServerHello (a flight with a long
# certificate chain is a few KiB).
_FLIGHT_MAX = 64 * 1024


#: One certificate of the server's chain (the same type the server's log uses).
CertInfo = CertificateInfo


@dataclass
class ProbeResult:
    """What ``probe`` found."""

    host: str
    port: int
    server_name: str | None
    """The SNI sent (None for an IP address)."""
    tls_version: str = "-"
    cipher: str = "-"
    cipher_bits: int = 0
    group: str | None = None
    """Key-exchange group, from the ServerHello (TLS 1.3) or the
    ServerKeyExchange (TLS 1.2 ECDHE); None when not in clear text."""
    hello_retry: bool = False
    """The server answered with a HelloRetryRequest (it wanted another group)."""
    ja3s: str | None = None
    ja3s_hash: str | None = None
    alpn: str | None = None
    resumed: bool | None = None
    """Whether a second connection resumed the session (None: not tried)."""
    verified: bool = False
    verify_error: str | None = None
    connect_ms: float = 0.0
    handshake_ms: float = 0.0
    chain: list[CertInfo] = field(default_factory=list)
    verify_exception: TlsEchoError | None = field(default=None, repr=False, compare=False)
    """The verification failure as an error (``verify_error`` is its text)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = asdict(self)
        del out["verify_exception"]
        return out


def _chain(sock: ssl.SSLObject, verified: bool) -> list[bytes]:
    """DER certificates the server sent (leaf first)."""
    # Public on Python >= 3.13; the same methods exist privately on 3.10-3.12.
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter = getattr(sock, name, None) or getattr(sock._sslobj, name, None)  # type: ignore[attr-defined]
    if getter is not None:
        certs = getter() or []
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in certs]  # type: ignore[attr-defined]
    der = sock.getpeercert(binary_form=True)
    return [der] if der else []


class _Conn:
    """TLS over memory BIOs on a blocking socket, keeping the first bytes
    the server sends (its handshake flight)."""

    def __init__(self, raw: socket.socket, tls: ssl.SSLObject, bios: tuple[Any, Any]) -> None:
        self.raw, self.tls = raw, tls
        self._in, self._out = bios
        self.seen = bytearray()

    def run(self, op: Callable[[], Any]) -> Any:
        """``op`` (a TLS step), moving bytes until it completes."""
        while True:
            try:
                result = op()
            except ssl.SSLWantReadError:
                self._flush()
                data = self.raw.recv(65536)
                if len(self.seen) < _FLIGHT_MAX:
                    self.seen += data[: _FLIGHT_MAX - len(self.seen)]
                if data:
                    self._in.write(data)
                else:
                    self._in.write_eof()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        if pending := self._out.read():
            self.raw.sendall(pending)

    def close(self) -> None:
        self.raw.close()


def _connect(
    config: ClientConfig, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[_Conn, float, float]:
    t0 = time.perf_counter()
    try:
        raw = socket.create_connection((config.host, config.port), timeout=config.timeout)
    except TimeoutError:
        raise PeerError(f"timed out after {config.timeout:g} s connecting") from None
    except OSError as exc:
        raise map_connect_error(exc, config) from None
    t1 = time.perf_counter()
    bios = (ssl.MemoryBIO(), ssl.MemoryBIO())
    # An IP address is checked against the certificate's IP names, never sent as SNI.
    tls = ctx.wrap_bio(*bios, server_hostname=config.verify_name, session=session)
    conn = _Conn(raw, tls, bios)
    try:
        conn.run(tls.do_handshake)
    except (ssl.SSLError, TimeoutError):
        raw.close()
        raise
    except OSError as exc:  # a reset or a close in the middle of the handshake
        raw.close()
        raise PeerError(
            f"the server closed the connection in the handshake ({exc.strerror or exc})"
        ) from None
    except BaseException:
        raw.close()
        raise
    return conn, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3


def _session_and_close(conn: _Conn) -> ssl.SSLSession | None:
    """Collect TLS 1.3 tickets (they follow the handshake), close with
    close_notify, and return the session to resume."""
    conn.raw.settimeout(_TICKET_WAIT)
    # OSError covers the timeout (no data is expected) and TLS errors.
    with contextlib.suppress(OSError):
        conn.run(lambda: conn.tls.read(1))  # processes post-handshake messages
    session = conn.tls.session
    with contextlib.suppress(OSError):
        conn.run(conn.tls.unwrap)
    conn.close()
    return session


def _read_flight(result: ProbeResult, seen: bytes) -> None:
    try:
        flight = parse_server_flight(seen)
    except ClientHelloError:
        return
    if flight is not None:
        result.group = flight.group_name
        result.hello_retry = flight.hello_retry
        result.ja3s, result.ja3s_hash = flight.ja3s(), flight.ja3s_hash()


def probe(config: ClientConfig, *, resume: bool = True) -> ProbeResult:
    """Connect to ``config.host:port`` and report the handshake.

    Verification failures do not raise: they are reported in the result
    (``verified``, ``verify_error``), and the rest is read from a second,
    unverified handshake.

    Raises:
        ConnectError: no TCP connection.
        PeerError: the handshake failed for another reason, or timed out.
        CertificateError: ``cafile``, ``cert`` or ``key`` unusable.
    """
    result = ProbeResult(
        config.host,
        config.port,
        config.sni,
    )
    ctx = client_context(config)
    try:
        sock, result.connect_ms, result.handshake_ms = _connect(config, ctx)
        result.verified = not config.insecure
    except ssl.SSLCertVerificationError as exc:
        result.verify_exception = map_handshake_error(exc, config)
        result.verify_error = str(result.verify_exception)
        insecure = dataclasses.replace(config, insecure=True)
        ctx = client_context(insecure)
        try:
            sock, result.connect_ms, result.handshake_ms = _connect(insecure, ctx)
        except ssl.SSLError as exc2:
            raise map_handshake_error(exc2, config) from None
    except ssl.SSLError as exc:
        raise map_handshake_error(exc, config) from None
    except TimeoutError:
        raise PeerError(f"timed out after {config.timeout:g} s in the handshake") from None
    now = dt.datetime.now(dt.UTC)
    tls = sock.tls
    try:
        result.tls_version = tls.version() or "-"
        cipher = tls.cipher()
        if cipher:
            result.cipher, result.cipher_bits = cipher[0], cipher[2]
        _read_flight(result, bytes(sock.seen))
        result.alpn = tls.selected_alpn_protocol()
        result.chain = [describe_certificate(der, now) for der in _chain(tls, result.verified)]
    finally:
        session = _session_and_close(sock)
    result.connect_ms = round(result.connect_ms, 3)
    result.handshake_ms = round(result.handshake_ms, 3)
    if resume:
        result.resumed = False
        if session is not None:
            again_config = config if result.verified else dataclasses.replace(config, insecure=True)
            try:
                again, _, _ = _connect(again_config, ctx, session)
            except OSError:  # ssl.SSLError included
                pass
            else:
                result.resumed = again.tls.session_reused
                _session_and_close(again)
    return result
