"""``tlsecho demo``: a server and the client against it, both transcripts."""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from tlsecho.cli.common import add_loop, subcommand
from tlsecho.client.echo import EchoClient
from tlsecho.config import ClientConfig, ServerConfig
from tlsecho.logs import TagFormatter
from tlsecho.pki.certs import write_pair
from tlsecho.server.core import EchoServer
from tlsecho.server.run import run_on_loop

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    m = subcommand(
        sub,
        "demo",
        "run a server and the client against it, print both transcripts",
        "A throw-away certificate, a server on a free loopback port and the original\n"
        "client's exchange, with the log lines of both sides.",
        ["tlsecho demo"],
    )
    add_loop(m)


async def _demo() -> None:
    main_log = logging.getLogger("tlsecho.main")
    with tempfile.TemporaryDirectory(prefix="tlsecho-demo-") as tmp:
        pair = write_pair(Path(tmp))
        server = EchoServer(ServerConfig(host="localhost", port=0, cert=pair.cert, key=pair.key))
        await server.start()
        try:
            client = EchoClient(ClientConfig(host="localhost", port=server.port, cafile=pair.cert))
            await client.send()
            await server.wait_idle()
        finally:
            main_log.info("closing server")
            await server.aclose()


class _DemoFilter(logging.Filter):
    """Split the demo's log records into the server's and the client's."""

    def __init__(self, client: bool) -> None:
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.startswith("tlsecho.")
        return ours and (record.name == "tlsecho.client") == self.client


def run(args: argparse.Namespace) -> int:
    buf_server, buf_client = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    for buf, want_client in ((buf_server, False), (buf_client, True)):
        h = logging.StreamHandler(buf)
        h.setFormatter(TagFormatter())
        h.addFilter(_DemoFilter(want_client))
        root.addHandler(h)
    run_on_loop(args.loop, _demo())
    logging.getLogger("tlsecho.main").info("closing event loop")
    print("$ tlsecho serve -v --port 0   # server transcript")
    print(buf_server.getvalue(), end="")
    print()
    print("$ tlsecho send --port PORT    # client transcript")
    print(buf_client.getvalue(), end="")
    return 0
