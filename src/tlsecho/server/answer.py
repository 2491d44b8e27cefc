"""Mode ``hello``'s answer: what the client offered and what was negotiated,
as one JSON document (a self-hosted tls.peet.ws for any TLS client); and
what mode ``http`` says of the connection in each of its answers.

Built from the ClientHello the server peeked (:mod:`tlsecho.wire.clienthello`)
and the finished handshake; the server sends it, then close_notify.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

from tlsecho._version import __version__
from tlsecho.server.connection import ConnectionRecord
from tlsecho.server.identity import client_identity
from tlsecho.wire.clienthello import ClientHelloError, RawClientHello
from tlsecho.wire.proxy_protocol import ProxyHeader

__all__ = ["hello_document", "http_context"]


def _hello_report(raw: RawClientHello | None, error: str | None) -> dict[str, Any]:
    """``client_hello`` (the parsed report, None without one) and, when
    there is none, ``client_hello_error``."""
    if raw is None:
        return {"client_hello": None, "client_hello_error": error or "not read"}
    try:
        return {"client_hello": raw.parse().report()}
    except ClientHelloError as exc:
        return {"client_hello": None, "client_hello_error": str(exc)}


def _negotiated(sock: ssl.SSLSocket, now: ConnectionRecord) -> dict[str, Any]:
    cipher = sock.cipher()
    return {
        "tls_version": sock.version(),
        "cipher": cipher[0] if cipher else None,
        "alpn": sock.selected_alpn_protocol(),
        "sni": now.sni,
        "resumed": sock.session_reused,
        "client_certificate": _client_certificate(sock),
    }


def hello_document(
    raw: RawClientHello | None, error: str | None, sock: ssl.SSLSocket, now: ConnectionRecord
) -> bytes:
    """The answer's bytes: a JSON object and a newline.

    Args:
        raw: the ClientHello the server read (None if it could not).
        error: why there is none, when there is none.
        sock: the connection, its handshake done.
        now: the connection's record so far (peer, PROXY source, SNI).
    """
    doc: dict[str, Any] = {"tlsecho": __version__, "peer": now.peer, "via": now.via}
    doc.update(_hello_report(raw, error))
    doc["negotiated"] = _negotiated(sock, now)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def http_context(
    raw: RawClientHello | None,
    error: str | None,
    sock: ssl.SSLSocket,
    now: ConnectionRecord,
    proxy: ProxyHeader | None,
) -> dict[str, Any]:
    """What mode ``http`` says of the connection in every answer
    (:func:`tlsecho.tlsbin.routes.echo_document`): the peer and the PROXY
    header, TLS, the ClientHello, the server."""
    tls = {"version" if k == "tls_version" else k: v for k, v in _negotiated(sock, now).items()}
    return {
        "peer": now.peer,
        "via": now.via,
        "proxy_protocol": proxy.report() if proxy is not None else None,
        "tls": tls,
        **_hello_report(raw, error),
        "server": {
            "host": socket.gethostname(),
            "worker": now.worker,
            "endpoint": now.endpoint,
            "tlsecho": __version__,
        },
    }


def _client_certificate(sock: ssl.SSLSocket) -> dict[str, Any] | None:
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    # Presented means verified: OpenSSL refuses the handshake otherwise.
    out: dict[str, Any] = {**client_identity(der).as_dict(), "verified": True}
    # The chain as verified, leaf first: Python 3.13+ (before, the leaf only).
    chain = getattr(sock, "get_verified_chain", None)
    if chain is not None:  # pragma: no cover - Python 3.11 and 3.12 lack it
        out["chain"] = [_chain_entry(c) for c in chain()]
    return out


def _chain_entry(der: bytes) -> dict[str, str]:
    ident = client_identity(der)
    return {"subject": ident.subject, "issuer": ident.issuer, "sha256": ident.sha256}
