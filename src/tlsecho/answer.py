"""Mode ``hello``'s answer: what the client offered and what was negotiated,
as one JSON document (a self-hosted tls.peet.ws for any TLS client).

Built from the ClientHello the server peeked (:mod:`tlsecho.clienthello`)
and the finished handshake; the server sends it, then close_notify.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from tlsecho import __version__
from tlsecho.clienthello import ClientHelloError, RawClientHello
from tlsecho.connection import ConnectionRecord
from tlsecho.identity import client_identity

__all__ = ["hello_document"]


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
    if raw is not None:
        try:
            doc["client_hello"] = raw.parse().report()
        except ClientHelloError as exc:
            doc["client_hello"] = None
            doc["client_hello_error"] = str(exc)
    else:
        doc["client_hello"] = None
        doc["client_hello_error"] = error or "not read"
    cipher = sock.cipher()
    doc["negotiated"] = {
        "tls_version": sock.version(),
        "cipher": cipher[0] if cipher else None,
        "alpn": sock.selected_alpn_protocol(),
        "sni": now.sni,
        "resumed": sock.session_reused,
        "client_certificate": _client_certificate(sock),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _client_certificate(sock: ssl.SSLSocket) -> dict[str, Any] | None:
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    # Presented means verified: OpenSSL refuses the handshake otherwise.
    return {**client_identity(der).as_dict(), "verified": True}
