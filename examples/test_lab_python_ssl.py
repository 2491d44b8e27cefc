"""A client against every endpoint of ``tlsecho lab``: the one parametrised
test a library team writes ("my client rejects every bad endpoint and
survives every fault"), here for Python's ssl.

    pytest examples/test_lab_python_ssl.py

The ``tlsecho_lab`` fixture (installed with tlsecho) runs the lab for the
session and yields its manifest; each endpoint says what a correct client
gets (``expect``). The client below is Python's ssl over memory BIOs, so it
sees the socket itself: a reset, a FIN without close_notify and a timeout
stay apart (an SSLSocket on OpenSSL 3 calls a reset an unexpected EOF).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

from tlsecho.lab.endpoints import MESSAGE, catalog

NAMES = [entry.name for entry in catalog()]
# OpenSSL reasons for a record that is no TLS (garbage after the handshake).
NOT_TLS = {"WRONG_VERSION_NUMBER", "UNEXPECTED_RECORD", "RECORD_LAYER_FAILURE", "BAD_RECORD_TYPE"}


def classify(exc: ssl.SSLError) -> tuple[str, str]:
    """An SSLError in the manifest's words."""
    reason = exc.reason or ""
    if "ALERT" in reason or reason.startswith("TLSV1_UNRECOGNIZED_NAME"):
        name = reason.lower()
        for prefix in ("sslv3_alert_", "tlsv13_alert_", "tlsv1_alert_", "tlsv1_"):
            name = name.removeprefix(prefix)
        return "alert", name
    if "BAD_RECORD_MAC" in reason:
        return "error", "bad record mac"
    if reason in NOT_TLS or "PACKET_LENGTH" in reason:
        return "error", "not tls"
    return "error", reason.lower()


def my_client(
    endpoint: dict[str, Any], lab: dict[str, Any], timeout: float = 3.0
) -> tuple[str, str]:
    """Send the lab's message to ``endpoint``: what came of it."""
    ctx = ssl.create_default_context(cafile=lab["ca"])
    needs = endpoint["needs"]
    if needs.get("client_cert"):
        ctx.load_cert_chain(lab["client_cert"], lab["client_key"])
    if needs.get("alpn"):
        ctx.set_alpn_protocols(needs["alpn"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=endpoint["sni"])
    got, handshaken, sent = b"", False, False
    with socket.create_connection((endpoint["host"], endpoint["port"]), timeout=timeout) as sock:
        while True:
            try:
                if not handshaken:
                    tls.do_handshake()
                    handshaken = True
                if not sent:
                    tls.write(MESSAGE + b"\0")
                    sent = True
                while chunk := tls.read(65536):
                    got += chunk
                # close_notify: the whole echo, or part of it
                return ("echo", "intact") if got == MESSAGE else ("cut", f"{len(got)} bytes")
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as exc:
                return "reject", exc.verify_message
            except ssl.SSLEOFError:  # a FIN without close_notify
                return "error", "truncated" if handshaken else "closed"
            except ssl.SSLError as exc:
                return classify(exc)
            try:
                if out.pending:
                    sock.sendall(out.read())
                data = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return "error", "reset"
            except TimeoutError:
                return "timeout", f"after {len(got)} bytes" if got else "no answer"
            if data:
                inc.write(data)
            else:
                inc.write_eof()


@pytest.mark.parametrize("name", NAMES)
def test_my_client_against_the_lab(tlsecho_lab: dict[str, Any], name: str) -> None:
    endpoint = next(e for e in tlsecho_lab["endpoints"] if e["name"] == name)
    result, detail = my_client(endpoint, tlsecho_lab)
    want = endpoint["expect"]
    assert result == want["result"], (
        f"{name}: got {result}: {detail}; want {endpoint['expect_text']}"
    )
    if result == "reject":  # OpenSSL's verify message, in a sentence of Python's
        assert want["detail"].lower() in detail.lower(), f"{name}: {detail}"
    else:
        assert detail == want["detail"], f"{name}: got {result}: {detail}"
