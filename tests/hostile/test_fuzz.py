"""Fuzz the whole server over loopback: random chunk boundaries (one TLS
record per chunk), NULs anywhere, abrupt closes and garbage. The only
outcomes allowed are a correct echo or a clean close, and the server must
stay up without a traceback."""

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
def fuzz_server(ca_pki: Pki) -> Iterator[ServerProcess]:
    srv = start_server("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key), *FAST)
    yield srv
    assert srv.proc.poll() is None, "the server died"
    stop_cleanly(srv)


chunks = st.lists(st.binary(min_size=1, max_size=3000), min_size=0, max_size=12)
endings = st.sampled_from(["nul", "close_notify", "reset", "fin"])


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=chunks, ending=endings, garbage=st.one_of(st.none(), st.binary(min_size=1, max_size=64))
)
@pytest.mark.slow
def test_fuzz_sessions(
    fuzz_server: ServerProcess, ca_pki: Pki, parts: list[bytes], ending: str, garbage: bytes | None
) -> None:
    raw = socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=20)
    if garbage is not None:
        # Not TLS: the server must drop it without answering anything but an alert.
        raw.sendall(garbage)
        try:
            got = read_to_close(raw)
        finally:
            raw.close()
        assert not got or got[0] == 0x15  # nothing, or a TLS alert record
        return
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    message = b"".join(parts)
    nul = message.find(b"\x00")
    expected = message if nul < 0 else message[:nul]
    try:
        for p in parts:
            s.sendall(p)
        if nul >= 0 or ending == "nul":
            if nul < 0:
                s.sendall(b"\x00")
            assert read_to_close(s) == expected  # the echo, then a clean close
        elif ending == "close_notify":
            got = b""
            while len(got) < len(expected):
                chunk = s.recv(65536)
                assert chunk, "closed before the echo was complete"
                got += chunk
            assert got == expected
            s.unwrap()
        elif ending == "reset":
            reset(s)
        else:
            socket.socket.shutdown(s, socket.SHUT_WR)
            assert expected.startswith(read_to_close(s))  # a prefix, then the close
    except (BrokenPipeError, ConnectionResetError):
        # Only after the NUL may the server have closed while we still wrote.
        assert nul >= 0
    finally:
        s.close()
    assert fuzz_server.proc.poll() is None
