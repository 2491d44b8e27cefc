"""pytest fixtures for people who test their own TLS clients.

Installed with tlsecho (entry point ``pytest11``), so these are available in
any test suite::

    def test_my_client(tlsecho_server):
        ctx = ssl.create_default_context(cafile=str(tlsecho_server.ca_path))
        with socket.create_connection((tlsecho_server.host, tlsecho_server.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hello\\0")
                assert s.recv(100) == b"hello"

- ``tlsecho_pki``: a CA, server and client certificates and the bad ones
  (session-wide, in a temporary directory).
- ``tlsecho_server``: a running server on 127.0.0.1, a free port.
- ``tlsecho_server_factory(**options)``: more servers, with any option of
  ``tlsecho serve`` as a :class:`~tlsecho.config.ServerConfig` field
  (``mode="line"``, ``client_auth="required"``, ``alpn=("h2",)``,
  ``max_version="1.2"``, …) and ``bad="expired"`` (or any bad kind) to serve a
  broken certificate.
- ``tlsecho_bad_endpoints``: the ``tlsecho badssl`` set, by name.
- ``tlsecho_lab``: the whole ``tlsecho lab`` (every bad certificate, policy
  and fault, one port each), session-wide: yields its manifest, a dict whose
  ``endpoints`` say where each listens and what a correct client must get
  (``expect``); parametrise one test over :func:`tlsecho.lab.endpoints.catalog`'s names
  (``examples/test_lab_python_ssl.py`` does it for Python's ssl).
- ``tlsecho_client_hello(run)``: runs ``run(server)`` (your client connecting
  to the server it is given) and returns the ClientHello it sent, parsed.
- ``tlsecho_golden(hello, path)``: asserts that ClientHello matches a golden
  JSON file (GREASE, randoms and key shares ignored; extension order too with
  ``ignore_extension_order=True``), with a readable diff;
  ``pytest --tlsecho-update-golden`` writes the files instead::

      def test_client_hello_is_stable(tlsecho_client_hello, tlsecho_golden):
          hello = tlsecho_client_hello(lambda s: my_client.connect(s.host, s.port, s.ca_path))
          tlsecho_golden(hello, Path(__file__).parent / "golden" / "my_client.json")

While a fixture's servers run, tlsecho logs at INFO: a failing test's report
shows the server's side ("Captured log call": one line per connection, with
how it ended and why).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tlsecho import golden
from tlsecho.config import ServerConfig
from tlsecho.errors import ConfigError
from tlsecho.lab.badssl import Endpoint, endpoint_configs
from tlsecho.pki.certs import Pki, write_pki
from tlsecho.server.connection import ConnectionRecord
from tlsecho.server.core import EchoServer
from tlsecho.server.group import LoopThread
from tlsecho.wire.clienthello import ClientHello

__all__ = ["RunningServer"]


class RunningServer:
    """A tlsecho server running in a background thread of the test process."""

    def __init__(self, config: ServerConfig, pki: Pki, endpoint: Endpoint | None = None) -> None:
        self.config = config
        self.pki = pki
        self.endpoint = endpoint
        """For ``tlsecho_bad_endpoints``: what this endpoint tests."""
        self.host = "127.0.0.1"
        self.port = 0
        self._server = EchoServer(config)
        self._thread: LoopThread | None = None

    @property
    def ca_path(self) -> Path:
        """The CA certificate that signed the server's certificate (trust it)."""
        return self.pki.ca.cert

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port

    @property
    def outcomes(self) -> dict[str, int]:
        """Finished connections by how they ended (``terminated``, ``handshake-failed``, …)."""
        return dict(self._server.outcomes)

    def wait_outcome(self, outcome: str, count: int = 1, timeout: float = 10.0) -> int:
        """Wait until ``count`` connections have ended with ``outcome`` (the
        server finishes a connection after the client has moved on: a
        refused handshake, say, waits for the client to read the alert).

        Returns:
            The number of such connections so far.

        Raises:
            TimeoutError: fewer than ``count`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while (n := self.outcomes.get(outcome, 0)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} connection(s) ended with {outcome!r}, not {count}")
            time.sleep(0.01)
        return n

    def on_record(self, listener: Callable[[ConnectionRecord], None]) -> None:
        """Call ``listener`` (in the server's thread) with each finished
        connection's record."""
        self._server.on_record.append(listener)

    def client_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        """A client context that trusts the server's CA (hostname ``localhost``);
        with ``client_cert``, it also presents the PKI's client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        if client_cert:
            ctx.load_cert_chain(self.pki.client.cert, self.pki.client.key)
        return ctx

    def start(self) -> RunningServer:
        self._thread = LoopThread()
        try:
            self._thread.call(self._server.start(), what="the tlsecho server's start")
        except BaseException:
            self._thread.close()
            raise
        self.host, self.port = self._server.addresses[0]
        return self

    def stop(self) -> None:
        """Close every connection (close_notify) and stop the thread."""
        if self._thread is None:
            return
        self._thread.call(self._server.aclose())
        self._thread.close()
        self._thread = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tlsecho-update-golden",
        action="store_true",
        help="tlsecho: (re)write the golden ClientHello files instead of comparing",
    )


@pytest.fixture(scope="session")
def tlsecho_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """``tlsecho cert --ca --bad`` in a temporary directory."""
    return write_pki(tmp_path_factory.mktemp("tlsecho-pki"), bad=True)


@contextlib.contextmanager
def _server_logs_captured() -> Iterator[None]:
    """Let tlsecho's INFO lines reach pytest's log capture for this test."""
    logger = logging.getLogger("tlsecho")
    before = logger.level
    if before == logging.NOTSET or before > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(before)


@pytest.fixture
def tlsecho_server_factory(tlsecho_pki: Pki) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with ``tlsecho serve`` options; all stop after the test."""
    started: list[RunningServer] = []

    def start(*, bad: str | None = None, **options: Any) -> RunningServer:
        if bad is not None and bad not in tlsecho_pki.bad:
            kinds = ", ".join(sorted(tlsecho_pki.bad))
            raise ConfigError(f"bad={bad!r}: not a bad certificate kind (one of: {kinds})")
        pair = tlsecho_pki.bad[bad] if bad else tlsecho_pki.server
        if options.get("client_auth", "none") != "none":
            options.setdefault("client_ca", tlsecho_pki.ca.cert)
        config = ServerConfig(host="127.0.0.1", port=0, cert=pair.cert, key=pair.key, **options)
        server = RunningServer(config, tlsecho_pki).start()
        started.append(server)
        return server

    with _server_logs_captured():
        yield start
        for server in started:
            server.stop()


@pytest.fixture
def tlsecho_server(tlsecho_server_factory: Callable[..., RunningServer]) -> RunningServer:
    """A running tlsecho server (mode ``nul``) on 127.0.0.1 and a free port."""
    return tlsecho_server_factory()


@pytest.fixture
def tlsecho_bad_endpoints(tlsecho_pki: Pki) -> Iterator[dict[str, RunningServer]]:
    """The ``tlsecho badssl`` endpoints, by name (``expired``, ``wrong-host``, …)."""
    base = ServerConfig(host="127.0.0.1", port=0)
    with _server_logs_captured():
        servers = {
            ep.name: RunningServer(cfg, tlsecho_pki, ep).start()
            for ep, cfg in endpoint_configs(tlsecho_pki, base)
        }
        yield servers
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def tlsecho_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The ``tlsecho lab`` catalog, running for the whole session: its manifest."""
    from tlsecho.lab.endpoints import start_lab

    out = tmp_path_factory.mktemp("tlsecho-lab")
    thread = LoopThread("tlsecho-lab")
    try:
        group, manifest = thread.call(start_lab(out), timeout=120, what="the tlsecho lab's start")
    except BaseException:
        thread.close()
        raise
    with _server_logs_captured():
        yield manifest
    thread.call(group.aclose(), timeout=60)
    thread.close()


@pytest.fixture
def tlsecho_client_hello(
    tlsecho_server_factory: Callable[..., RunningServer],
) -> Callable[..., ClientHello]:
    """``capture(run, timeout=10, **server_options)``: start a server that
    reads ClientHellos, call ``run(server)`` (your client connects to
    ``server.host``/``server.port``, trusting ``server.ca_path``), and return
    the first ClientHello it sent. Refused handshakes count: a client that
    rejects the certificate has sent its ClientHello all the same."""

    def capture(
        run: Callable[[RunningServer], Any], timeout: float = 10.0, **options: Any
    ) -> ClientHello:
        options.setdefault("mode", "raw")
        server = tlsecho_server_factory(fingerprint=True, **options)
        seen: list[ClientHello] = []
        server.on_record(lambda record: _keep_hello(record, seen))
        run(server)
        deadline = time.monotonic() + timeout
        while not seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ClientHello reached the server within {timeout:g} s")
            time.sleep(0.01)
        return seen[0]

    return capture


def _keep_hello(record: ConnectionRecord, seen: list[ClientHello]) -> None:
    hello = record.hello.parsed() if record.hello is not None else None
    if hello is not None:
        seen.append(hello)


@pytest.fixture
def tlsecho_golden(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``check(hello, path, ignore_extension_order=False)``: assert ``hello``
    matches the golden file (``--tlsecho-update-golden`` writes it)."""
    update = bool(request.config.getoption("--tlsecho-update-golden"))

    def check(
        hello: ClientHello, path: Path | str, *, ignore_extension_order: bool = False
    ) -> None:
        golden.check(
            Path(path), hello, update=update, ignore_extension_order=ignore_extension_order
        )

    return check
