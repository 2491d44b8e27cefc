"""The ``hostile`` fixture: a harness per case (see :mod:`tests.hostile.helpers`)."""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import as_text, start_server, stop_cleanly
from tests.hostile.helpers import CANARY_PROXY_HEADER, FAST, Canary, Harness, fd_count, rss_kib
from tlsecho.logs import plural
from tlsecho.pki.certs import Pki


@pytest.fixture
def hostile(ca_pki: Pki) -> Iterator[Callable[..., Harness]]:
    """Start a server with the given extra arguments, its canary, and baselines."""
    made: list[Harness] = []
    # The clients of some cases need thousands of descriptors too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def make(*args: str, canary: bool = True, prefix: tuple[str, ...] = ()) -> Harness:
        srv = start_server(
            "--cert",
            str(ca_pki.server.cert),
            "--key",
            str(ca_pki.server.key),
            *FAST,
            "--log-format",
            "json",
            # The ClientHello reader on: the path with the most states (the
            # integration suites run the default, without it).
            "--fingerprint",
            *args,
            prefix=prefix,
        )

        def arg(name: str) -> str | None:
            return args[args.index(name) + 1] if name in args else None

        # The canary speaks what the server demands of every client.
        bird = Canary(
            srv.port,
            ca_pki.ca.cert,
            arg("--mode") or "nul",
            alpn=(arg("--alpn") or "").split(",")[0] or None,
            proxy_header=CANARY_PROXY_HEADER if arg("--proxy-protocol") else b"",
        )
        if canary:
            bird.start()
        else:
            bird.sock.close()
        h = Harness(srv, ca_pki, bird if canary else None)
        made.append(h)
        if canary:
            # Baselines once the canary's session is in its steady state:
            # handshake done, its first echo back.
            assert bird.first_round.wait(15), "the canary's first echo never came"
        h.fds, h.rss = fd_count(h.pid), rss_kib(h.pid)
        return h

    yield make
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for h in made:
        if h.canary is not None:
            h.canary.finish()
        if h.server.proc.poll() is None:  # (unless the case stopped it)
            h.settle(rss_slack_kib=0)  # each case checks its own memory bound
        stop_cleanly(h.server)
        # Every connection ended with exactly one record; the summary at
        # shutdown counts them by outcome.
        done = h.server.records()
        summary = next(t for t in map(as_text, h.server.lines()) if t.startswith("main: served "))
        assert summary.startswith(f"main: served {plural(len(done), 'connection')} ("), summary
