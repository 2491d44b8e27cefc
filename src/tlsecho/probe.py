"""``tlsecho probe``: connect, handshake, and report what was negotiated.

Polite to any TLS server: it sends no application data, reads only to
collect TLS 1.3 session tickets, and closes with close_notify. It then
reconnects once with the session to tell whether resumption works.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tlsecho.certs import CertificateInfo, describe_certificate
from tlsecho.client_errors import map_connect_error, map_handshake_error
from tlsecho.config import ClientConfig
from tlsecho.errors import PeerError, TlsEchoError
from tlsecho.tls import client_context

__all__ = ["CertInfo", "ProbeResult", "probe"]

_TICKET_WAIT = 0.3


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
    """Key-exchange group, where this Python can tell (3.11 cannot)."""
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


def _chain(sock: ssl.SSLSocket, verified: bool) -> list[bytes]:
    """DER certificates the server sent (leaf first)."""
    # Public on Python >= 3.13; the same methods exist privately on 3.10-3.12.
    name = "get_verified_chain" if verified else "get_unverified_chain"
    getter = getattr(sock, name, None) or getattr(sock._sslobj, name, None)  # type: ignore[attr-defined]
    if getter is not None:
        certs = getter() or []
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in certs]  # type: ignore[attr-defined]
    der = sock.getpeercert(binary_form=True)
    return [der] if der else []


def _connect(
    config: ClientConfig, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLSocket, float, float]:
    t0 = time.perf_counter()
    try:
        raw = socket.create_connection((config.host, config.port), timeout=config.timeout)
    except TimeoutError:
        raise PeerError(f"timed out after {config.timeout:g} s connecting") from None
    except OSError as exc:
        raise map_connect_error(exc, config) from None
    t1 = time.perf_counter()
    # An IP address is checked against the certificate's IP names, never sent as SNI.
    sock = ctx.wrap_socket(
        raw, server_hostname=config.verify_name, do_handshake_on_connect=False, session=session
    )
    try:
        sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return sock, (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3


def _session_and_close(sock: ssl.SSLSocket) -> ssl.SSLSession | None:
    """Collect TLS 1.3 tickets (they follow the handshake), close with
    close_notify, and return the session to resume."""
    sock.settimeout(_TICKET_WAIT)
    # OSError covers the timeout (no data is expected) and TLS errors.
    with contextlib.suppress(OSError):
        sock.recv(1)  # processes post-handshake messages
    session = sock.session
    with contextlib.suppress(OSError):
        sock.unwrap()
    sock.close()
    return session


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
    try:
        result.tls_version = sock.version() or "-"
        cipher = sock.cipher()
        if cipher:
            result.cipher, result.cipher_bits = cipher[0], cipher[2]
        group = getattr(sock, "group", None)
        result.group = group() if callable(group) else None
        result.alpn = sock.selected_alpn_protocol()
        result.chain = [describe_certificate(der, now) for der in _chain(sock, result.verified)]
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
                result.resumed = again.session_reused
                _session_and_close(again)
    return result
