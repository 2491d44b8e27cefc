"""The original example's server style, as the baseline: asyncio streams,
``reader.read(128)`` in a coroutine, a NUL checked only at the end of a read
(the example's bug, kept here on purpose: this is the thing we measure against).

    python benchmarks/original_style_server.py CERT KEY PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(128)
        if data:
            writer.write(data.rstrip(b"\x00") if data.endswith(b"\x00") else data)
            await writer.drain()
            if data.endswith(b"\x00"):
                break
        else:
            break
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def main() -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[3]), ssl=ctx)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
