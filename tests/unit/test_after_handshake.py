"""The decisions right after a successful handshake (issue 22), on both
engines, against a fake loop, a fake server and a fake TLS object: no
process, no network. Which way a connection goes: ALPN refused, identity
refused, closed because the server is closing, or opened for the echo.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tlsecho.config import ServerConfig
from tlsecho.pki.issuer import Issuer
from tlsecho.server.connection import Outcome, State
from tlsecho.server.engines.base import EngineConnection
from tlsecho.server.engines.membio import BioTlsConnection
from tlsecho.server.engines.sslsocket import TlsConnection
from tlsecho.server.identity import Policy
from tlsecho.wire.deadlines import Limits


class FakeHandle:
    def cancel(self) -> None:
        pass


class FakeLoop:
    """What a connection asks of its loop, recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[str] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, *args: Any) -> FakeHandle:
        return FakeHandle()

    call_later = call_at

    def __getattr__(self, name: str) -> Any:  # add_reader, remove_writer, ...
        def record(*args: Any) -> None:
            self.calls.append(name)

        return record


class FakeServer:
    """The ConnectionOwner side, with a policy and a config per test."""

    def __init__(self, config: ServerConfig, policy: Policy) -> None:
        self.config = config
        self.metrics = None
        self.hard_closing = False
        self.health = None
        self.worker: int | None = None
        self.name: str | None = None
        self.loop = FakeLoop()
        self.limits = Limits(handshake=10, idle=None, session=None, close=5, linger=1)
        self.policy = policy
        self.records: list[Any] = []

    def watch_deadlines(self) -> None:
        pass

    def forget(self, conn: Any) -> None:
        pass

    def connection_lost(self, conn: Any, record: Any) -> None:
        self.records.append(record)


class FakeTls:
    """What the decisions read of the TLS object after the handshake."""

    def __init__(self, alpn: str | None, client_cn: str | None) -> None:
        """``client_cn``: the client presented a certificate with this CN."""
        self._alpn = alpn
        self._der = _client_der(client_cn) if client_cn else None

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)

    def selected_alpn_protocol(self) -> str | None:
        return self._alpn

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self._der


def _client_der(cn: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    valid = {"not_before": now, "not_after": now + dt.timedelta(days=1)}
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
    ca = Issuer.new_ca(ec.generate_private_key(ec.SECP256R1()), name, **valid)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    leaf = ca.issue(ec.generate_private_key(ec.SECP256R1()), leaf_name, usage="client", **valid)
    return leaf.public_bytes(Encoding.DER)


def _engine(base: type[EngineConnection]) -> type[EngineConnection]:
    class Probe(base):  # type: ignore[misc, valid-type]
        """The engine, with the steps after a decision recorded instead of run."""

        steps: list[str]

        def _read(self) -> None:
            self.steps.append("read")

        def _send_close(self) -> None:
            self.steps.append("close_notify")

        def close(self) -> None:
            self.steps.append("close")

    Probe.__slots__ = ("steps",)
    return Probe


ALPN_REQUIRED = {"alpn": ("echo",), "alpn_required": True}


@pytest.fixture
def pair() -> Iterator[socket.socket]:
    a, b = socket.socketpair()
    yield a
    a.close()
    b.close()


@pytest.mark.parametrize("engine", [TlsConnection, BioTlsConnection], ids=["sslsocket", "membio"])
@pytest.mark.parametrize(
    ("options", "policy", "tls", "hard_closing", "steps", "outcome"),
    [
        ({}, Policy(), FakeTls("h2", None), False, ["read"], None),
        (ALPN_REQUIRED, Policy(), FakeTls(None, None), False, ["close_notify"],
         Outcome.ALPN_REFUSED),
        (ALPN_REQUIRED, Policy(), FakeTls("echo", None), False, ["read"], None),
        ({"client_auth": "required"}, Policy(allow_cn=("alice",)), FakeTls(None, "bob"), False,
         ["close_notify"], Outcome.IDENTITY_REFUSED),
        ({"client_auth": "required"}, Policy(allow_cn=("alice",)), FakeTls(None, "alice"), False,
         ["read"], None),
        ({}, Policy(), FakeTls(None, None), True, ["close"], None),
    ],
    ids=["echo", "alpn-refused", "alpn-given", "identity-refused", "identity-admitted",
         "server-closing"],
)  # fmt: skip
def test_what_happens_after_the_handshake(
    pair: socket.socket,
    engine: type[EngineConnection],
    options: dict[str, Any],
    policy: Policy,
    tls: FakeTls,
    hard_closing: bool,
    steps: list[str],
    outcome: Outcome | None,
) -> None:
    if options.get("client_auth"):
        options = {**options, "client_ca": Path(__file__)}  # not read: the TLS is fake
    server = FakeServer(ServerConfig(**options), policy)
    server.hard_closing = hard_closing
    server_: Any = server  # duck-typed ConnectionOwner: a fake loop, no TLS contexts
    conn: Any = _engine(engine)(server_, pair, ("192.0.2.1", 5000))
    conn.steps = []
    assert conn._state is State.HANDSHAKE
    conn._handshake_done(tls)
    assert conn.steps == steps
    assert conn._outcome == outcome
    assert conn.version == "TLSv1.3" and conn.alpn == (tls._alpn or "-")
    if outcome is Outcome.IDENTITY_REFUSED:
        assert "identity not allowed: CN=bob" in str(conn._linger_exc)
