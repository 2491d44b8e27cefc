"""Fail closed: an exception of ours inside one connection ends that
connection at once and nothing else (issue 16).

Each case injects a failure into one stage of a server running in this
process (monkeypatch: the stage raises once, for the first connection), then
asserts over real TLS on loopback: no echo and no HTTP answer, the connection
closed within a second, one ``end=internal-error`` line and no traceback, the
``tlsecho_internal_errors_total`` metric, and a canary connection served by
the same server afterwards. Both engines are named explicitly, so the module
runs once per engine whatever ``$TLSECHO_ENGINE`` says.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

import tlsecho.server.engines.base as base
import tlsecho.server.engines.http as http_engine
from tlsecho.logs import JsonFormatter, TagFormatter
from tlsecho.pki.certs import Pki
from tlsecho.pytest_plugin import RunningServer
from tlsecho.server.engines.membio import BioTlsConnection, _Hello
from tlsecho.server.engines.pretls import HelloPeek, ProxyPeek
from tlsecho.server.engines.sslsocket import TlsConnection
from tlsecho.tlsbin import HttpFraming
from tlsecho.wire.faults import EchoFault, RecordFault, parse_fault
from tlsecho.wire.framing import LineFraming, NulFraming, RawFraming
from tlsecho.wire.proxy_protocol import ProxyParser

ENGINES = ("sslsocket", "membio")
PROXY_V1 = b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n"


class Injected(RuntimeError):
    """The failure a test injects (never a peer's documented error)."""


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """``owner.name`` raises :class:`Injected` on its first call, then works."""
    real = getattr(owner, name)
    calls = [0]

    def boom(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise Injected(f"injected into {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, boom)
    return calls


@dataclass
class Case:
    """One stage: where to inject, and the server it needs."""

    stage: str
    targets: Callable[[str], list[tuple[Any, str]]]
    options: dict[str, Any] = field(default_factory=dict)
    engines: tuple[str, ...] = ENGINES
    """The record faults exist on the memory-BIO engine only."""
    proxy: bool = False
    alpn: tuple[str, ...] = ()
    client_cert: bool = False


def _framing(cls: type) -> Callable[[str], list[tuple[Any, str]]]:
    return lambda engine: [(cls, "receive_data")]


CASES = [
    Case("framing-nul", _framing(NulFraming)),
    Case("framing-line", _framing(LineFraming), {"mode": "line"}),
    Case("framing-raw", _framing(RawFraming), {"mode": "raw"}),
    Case("hello-answer", lambda e: [(base, "hello_document")], {"mode": "hello"}),
    Case(
        "clienthello-reader",
        lambda e: [(HelloPeek, "read") if e == "sslsocket" else (_Hello, "feed")],
        {"fingerprint": True},
    ),
    Case(
        "proxy-reader",
        lambda e: [(ProxyPeek, "read") if e == "sslsocket" else (ProxyParser, "feed")],
        {"proxy_protocol": "v1"},
        proxy=True,
    ),
    Case(
        "identity",
        lambda e: [(base, "check_client")],
        {"client_auth": "required", "allow_cn": ("tlsecho client",)},
        client_cert=True,
    ),
    Case("fault-pick", lambda e: [(base, "hello_fault")], {"faults": (parse_fault("limit=100"),)}),
    Case("fault-echo", _framing(EchoFault), {"faults": (parse_fault("limit=100"),)}),
    Case(
        "fault-record",
        lambda e: [(RecordFault, "push")],
        {"faults": (parse_fault("latency=1"),)},
        engines=("membio",),
    ),
    Case("http1", _framing(HttpFraming), {"mode": "http"}, alpn=("http/1.1",)),
    Case("h2", _framing(HttpFraming), {"mode": "http"}, alpn=("h2",)),
    Case("http-context", lambda e: [(http_engine, "http_context")], {"mode": "http"}),
]

REQUEST = {
    "nul": b"BOOM hello\x00",
    "line": b"BOOM hello\n",
    "raw": b"BOOM hello",
    "hello": b"",
    "http": b"GET /get HTTP/1.1\r\nHost: localhost\r\n\r\n",
}


def h2_request() -> tuple[h2.connection.H2Connection, bytes]:
    """A client's preface and one GET /get, from h2 itself."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":path", "/get"), (":scheme", "https")]
    conn.send_headers(1, [*headers, (":authority", "localhost")], end_stream=True)
    return conn, conn.data_to_send()


def h2_responses(conn: h2.connection.H2Connection, data: bytes) -> list[h2.events.ResponseReceived]:
    """The responses in what the server sent (its SETTINGS are not one)."""
    events = conn.receive_data(data) if data else []
    return [e for e in events if isinstance(e, h2.events.ResponseReceived)]


def _connect(srv: RunningServer, case: Case) -> ssl.SSLSocket:
    ctx = srv.client_context(client_cert=case.client_cert)
    if case.alpn:
        ctx.set_alpn_protocols(list(case.alpn))
    raw = socket.create_connection(srv.address, timeout=5)
    if case.proxy:
        raw.sendall(PROXY_V1)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _exchange(srv: RunningServer, case: Case) -> tuple[bytes, float]:
    """Connect, send the mode's request, read to the end: what came back
    (after the handshake) and how long the server took to close."""
    mode = case.options.get("mode", "nul")
    h2conn, preface = h2_request()
    data = preface if "h2" in case.alpn else REQUEST[mode]
    start = time.monotonic()
    got = b""
    try:
        with _connect(srv, case) as tls:
            if data:
                tls.sendall(data)
            start = time.monotonic()
            while chunk := tls.recv(65536):
                got += chunk
    except (ssl.SSLError, ConnectionError):
        pass  # an alert or a reset: the end the barrier promises
    took = time.monotonic() - start
    if "h2" in case.alpn:  # the server's preface comes first, before any request
        assert h2_responses(h2conn, got) == []
        return b"", took
    return got, took


def _canary(srv: RunningServer, case: Case) -> bytes:
    """A well-behaved client on the same server, after the failure."""
    mode = case.options.get("mode", "nul")
    with _connect(srv, case) as tls:
        if "h2" in case.alpn:
            conn, preface = h2_request()
            tls.sendall(preface)
            got = b""
            while not (answers := h2_responses(conn, chunk := tls.recv(65536))) and chunk:
                got += chunk
            return b":status 200" if dict(answers[0].headers)[b":status"] == b"200" else got
        tls.sendall({"nul": b"canary\x00", "line": b"canary\n", "raw": b"canary"}.get(mode, b""))
        if mode == "http":
            tls.sendall(REQUEST["http"])
            return tls.recv(65536)
        if mode in ("raw", "line"):
            return tls.recv(65536)
        out = b""
        while chunk := tls.recv(65536):
            out += chunk
        return out


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="tlsecho")
    return caplog


@pytest.mark.parametrize(
    ("case", "engine"),
    [(c, e) for c in CASES for e in c.engines],
    ids=[f"{c.stage}-{e}" for c in CASES for e in c.engines],
)
def test_an_injected_failure_ends_only_its_connection(
    case: Case,
    engine: str,
    tlsecho_server_factory: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    tlsecho_pki: Pki,
) -> None:
    options = {"engine": engine, "metrics": ("127.0.0.1", 0), **case.options}
    srv = tlsecho_server_factory(**options)
    calls = [fail_once(monkeypatch, owner, name) for owner, name in case.targets(engine)]

    got, took = _exchange(srv, case)

    assert calls[0][0] >= 1, "the injected stage never ran: the test tests nothing"
    srv.wait_outcome("internal-error", timeout=5)
    assert got == b"", f"{case.stage}: the client got {got[:80]!r} after the failure"
    assert took < 1.0, f"{case.stage}: the server took {took:.2f} s to end the connection"
    done = [r for r in logs.records if r.getMessage().startswith("done ")]
    assert len(done) == 1 and "end=internal-error" in done[0].getMessage()
    assert "reason='Injected: injected into" in done[0].getMessage()
    assert "Traceback" not in logs.text
    metrics = srv._server.metrics
    assert metrics is not None
    assert metrics.registry.get_sample_value("tlsecho_internal_errors_total") == 1

    canary = _canary(srv, case)
    mode = case.options.get("mode", "nul")
    if mode in ("nul", "line", "raw"):
        assert canary == {"nul": b"canary", "line": b"canary\n", "raw": b"canary"}[mode]
    elif mode == "hello":
        assert b'"ja4"' in canary
    elif "h2" in case.alpn:
        assert canary == b":status 200"
    else:
        assert canary.startswith(b"HTTP/1.1 200")
    assert srv.outcomes.get("internal-error") == 1


@pytest.mark.debug_traceback
@pytest.mark.parametrize("fmt", ["json", "debug"])
def test_the_traceback_is_a_json_field_or_a_debug_line(
    fmt: str,
    tlsecho_server_factory: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one line stays one line at the default level; the traceback is
    the JSON record's ``traceback`` field, or a debug line at -v."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TagFormatter())
    logger = logging.getLogger("tlsecho")
    logger.addHandler(handler)
    try:
        if fmt == "debug":
            logger.setLevel(logging.DEBUG)
        srv = tlsecho_server_factory()
        fail_once(monkeypatch, NulFraming, "receive_data")
        case = CASES[0]
        assert _exchange(srv, case)[0] == b""
        srv.wait_outcome("internal-error", timeout=5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    text = stream.getvalue()
    if fmt == "json":
        records = [json.loads(line) for line in text.splitlines()]
        (done,) = [r for r in records if r.get("event") == "connection"]
        assert done["outcome"] == "internal-error"
        assert done["reason"] == "Injected: injected into receive_data"
        assert "Traceback (most recent call last)" in done["traceback"]
        assert "raise Injected" in done["traceback"]
        assert sum("Traceback" in line for line in text.splitlines()) == 1
    else:
        assert "internal error\nTraceback (most recent call last)" in text
        assert "end=internal-error reason='Injected: injected into receive_data'" in text


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failure_while_closing_is_abandoned_cleanly(
    engine: str,
    tlsecho_server_factory: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    """The end itself raises (a second bug in the same connection): the
    connection is unhooked and closed with no more of its code, said once,
    forgotten by the server, and the next client is served."""
    srv = tlsecho_server_factory(engine=engine)
    fail_once(monkeypatch, NulFraming, "receive_data")
    owner = BioTlsConnection if engine == "membio" else TlsConnection
    fail_once(monkeypatch, owner, "_release")
    got, took = _exchange(srv, CASES[0])
    assert got == b"" and took < 1.0
    srv.wait_outcome("internal-error", timeout=5)
    done = [r for r in logs.records if r.getMessage().startswith("done ")]
    assert len(done) == 1 and "end=internal-error" in done[0].getMessage()
    assert srv._server.connections_open == 0
    assert _canary(srv, CASES[0]) == b"canary"
    assert "Traceback" not in logs.text
