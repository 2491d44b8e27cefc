"""Shared fixtures: a throw-away PKI and real ``tlsecho serve`` processes
(the helpers they use are in :mod:`tests.helpers`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, start_server, stop_cleanly
from tlsecho.pki.certs import CertPair, Pki, write_pair, write_pki

# pytester: the pytest plugin is tested the way a user's suite runs it.
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolated_data_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Keep the per-user default certificate out of the real home."""
    d = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(d))
    return d


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs the CLI in-process (``main([...])``) configures the
    root logger with a handler on that test's captured stderr, which pytest
    closes after it: later in-process servers' lines would then print
    "--- Logging error ---" with a traceback. Each test gets the root logger
    back as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_traceback_logged(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    """In-process servers (the pytest plugin's, the fail-closed tests') log
    no traceback either: not ours, not asyncio's "Exception in callback".
    A test that asks for one at debug level says so (``debug_traceback``)."""
    yield
    if request.node.get_closest_marker("debug_traceback"):
        return
    bad = [
        r
        for r in caplog.get_records("call")
        if r.exc_info and r.name.partition(".")[0] in ("tlsecho", "asyncio")
    ]
    assert not bad, [r.getMessage() for r in bad]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """A self-signed pair for localhost, 127.0.0.1 and ::1."""
    return write_pair(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """Another self-signed pair: a CA the server does not use."""
    return write_pair(tmp_path_factory.mktemp("other"))


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _serve(pki: CertPair, loop_name: str, *extra: str) -> Iterator[ServerProcess]:
    srv = start_server(
        "--cert", str(pki.cert), "--key", str(pki.key), "--loop", loop_name, "-v", *extra
    )  # fmt: skip
    yield srv
    stop_cleanly(srv)


@pytest.fixture
def server(pki: CertPair, loop_name: str) -> Iterator[ServerProcess]:
    """``tlsecho serve -v`` with the test pair, on each event loop."""
    yield from _serve(pki, loop_name)


@pytest.fixture
def server_json(pki: CertPair, loop_name: str) -> Iterator[ServerProcess]:
    """The same server logging JSON (``--log-format json``): tests that check
    what it logged read its connection records, not the human text."""
    yield from _serve(pki, loop_name, "--log-format", "json")


@pytest.fixture(scope="session")
def ca_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """``tlsecho cert --ca --bad``: a CA, server and client certificates, bad ones."""
    return write_pki(tmp_path_factory.mktemp("ca"), bad=True)


@pytest.fixture
def run_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with arbitrary arguments (JSON logs: tests read each
    connection's record); stop them all afterwards, each cleanly."""
    started: list[ServerProcess] = []

    def start(*args: str, host: str = "127.0.0.1") -> ServerProcess:
        srv = start_server("--log-format", "json", *args, host=host)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        stop_cleanly(srv)
