"""Issue 5's design (a): an ``asyncio.Protocol`` on the loop's own TLS
transport (``create_server(ssl=...)``), nul framing, uvloop when installed.
A benchmark peer, not part of tlsecho: it cannot see failed handshakes.

    python benchmarks/peers/protocol_server.py CERT KEY PORT [asyncio|uvloop]
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Any


class Echo(asyncio.Protocol):
    transport: Any  # uvloop's TLS transport is no asyncio.Transport subclass

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        end = data.find(b"\x00")
        if end < 0:
            self.transport.write(data)
            return
        if end:
            self.transport.write(data[:end])
        self.transport.close()  # flushes, then close_notify


async def main() -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", int(sys.argv[3]), ssl=ctx)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[4:] == ["uvloop"]:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
