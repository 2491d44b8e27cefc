"""Who the client is: its certificate, as the server logs it.

One home for the client's identity, so the access policies that check it
(SANs, SPIFFE IDs, SPKI pins) have a place next to it.
"""

from __future__ import annotations

import ssl

from tlsecho.certs import describe_certificate
from tlsecho.logs import get_logger

__all__ = ["log_client_certificate"]

log_conn = get_logger("echo")


def log_client_certificate(sock: ssl.SSLSocket, tag: str) -> str | None:
    """Log the client certificate (or its absence); return its subject."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        log_conn.info("no client certificate", extra={"tag": tag})
        return None
    c = describe_certificate(der)
    log_conn.info(
        "client certificate subject=%r issuer=%r serial=%s sha256=%s",
        c.subject,
        c.issuer,
        c.serial,
        c.sha256,
        extra={"tag": tag},
    )
    return c.subject
