"""Fuzz ``serve --mode http`` over real TLS: request-shaped and random bytes
in random chunks, on HTTP/1.1 and on h2, ended by close_notify, a FIN or a
reset. Allowed: HTTP answers (a 4xx for what is malformed), an HTTP/2
GOAWAY, a clean close. The server stays up, prints no traceback, and a
well-formed request on a fresh connection is answered right after each
example."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ServerProcess, start_server, stop_cleanly
from tests.hostile.helpers import FAST, read_to_close, reset
from tlsecho.pki.certs import Pki


@pytest.fixture(scope="module")
def http_fuzz_server(ca_pki: Pki) -> Iterator[ServerProcess]:
    srv = start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), *FAST),
        *("--mode", "http", "--request-timeout", "1", "--max-body", "4096"),
    )
    yield srv
    assert srv.proc.poll() is None, "the server died"
    stop_cleanly(srv)


def _connect(srv: ServerProcess, ca_pki: Pki, alpn: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="localhost")


pieces = st.one_of(
    st.sampled_from(
        [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /delay/0.05 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /bytes/70000 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",  # an empty SETTINGS frame
            b"\r\n",
        ]
    ),
    st.binary(min_size=1, max_size=400),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(pieces, max_size=10),
    alpn=st.sampled_from(["http/1.1", "h2"]),
    ending=st.sampled_from(["close_notify", "fin", "reset"]),
)
def test_fuzz_http(
    http_fuzz_server: ServerProcess, ca_pki: Pki, parts: list[bytes], alpn: str, ending: str
) -> None:
    s = _connect(http_fuzz_server, ca_pki, alpn)
    try:
        for p in parts:
            s.sendall(p)
        if ending == "reset":
            reset(s)
            return
        if ending == "close_notify":
            s.unwrap()  # answers in flight are the TLS layer's to drop
            return
        socket.socket.shutdown(s, socket.SHUT_WR)  # a FIN (SSLSocket.shutdown drops TLS)
        got = read_to_close(s)
        if alpn == "http/1.1" and got:
            assert got.startswith(b"HTTP/1.1 "), repr(got[:100])
    except (ssl.SSLError, OSError):
        pass  # the server closed first: allowed
    finally:
        s.close()
        _canary(http_fuzz_server, ca_pki)


def _canary(http_fuzz_server: ServerProcess, ca_pki: Pki) -> None:
    # The server is up and answers the next client.
    with _connect(http_fuzz_server, ca_pki, "http/1.1") as ok:
        ok.sendall(b"GET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_to_close(ok).startswith(b"HTTP/1.1 201 Created\r\n")
    assert not any("Traceback" in ln for ln in http_fuzz_server.lines())
