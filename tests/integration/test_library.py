"""The typed library API, in process, on both event loops."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tlsecho import (
    ClientConfig,
    EchoClient,
    EchoMismatchError,
    EchoServer,
    ServerConfig,
    TlsHandshakeError,
    send,
    serve,
)
from tlsecho.pki.certs import CertPair
from tlsecho.server.run import new_event_loop_factory


def run(loop_name: str, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=new_event_loop_factory(loop_name)) as runner:
        runner.run(coro())


def server_config(pki: CertPair) -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, cert=pki.cert, key=pki.key)


def test_server_and_client(pki: CertPair, loop_name: str) -> None:
    async def main() -> None:
        async with EchoServer(server_config(pki)) as server:
            assert server.addresses == [("127.0.0.1", server.port)]
            client = EchoClient(ClientConfig(host="localhost", port=server.port, cafile=pki.cert))
            result = await client.send()
            assert (result.sent, result.received) == (46, 46)
            assert result.tls_version == "TLSv1.3"
            chunks: list[bytes] = []
            result = await client.send([b"a" * 100_000, b"b"], on_echo=chunks.append)
            assert b"".join(chunks) == b"a" * 100_000 + b"b"
            await server.wait_idle()
            assert server.connections_total == 2
            assert server.connections_open == 0

    run(loop_name, main)


def test_serve_yields_addresses_and_send(pki: CertPair, loop_name: str) -> None:
    async def main() -> None:
        async with serve(server_config(pki)) as addresses:
            (host, port) = addresses[0]
            cfg = ClientConfig(host=host, port=port, cafile=pki.cert, server_hostname="localhost")

            async def parts() -> Any:
                for p in (b"one ", b"two"):
                    yield p

            result = await send(cfg, parts())
            assert result.received == 7

    run(loop_name, main)


def test_client_errors_are_typed(pki: CertPair, other_pki: CertPair) -> None:
    async def main() -> None:
        async with EchoServer(server_config(pki)) as server:
            bad = ClientConfig(host="localhost", port=server.port, cafile=other_pki.cert)
            with pytest.raises(TlsHandshakeError, match="certificate verify failed"):
                await send(bad)
            good = ClientConfig(host="localhost", port=server.port, cafile=pki.cert)
            with pytest.raises(Exception, match="NUL byte at offset 2"):
                await send(good, [b"ab\x00"])

    run("asyncio", main)


def test_custom_ssl_context(pki: CertPair) -> None:
    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        async with EchoServer(ServerConfig(host="127.0.0.1", port=0), ssl_context=ctx) as server:
            r = await send(ClientConfig(host="localhost", port=server.port, cafile=pki.cert))
            assert r.tls_version == "TLSv1.2"

    run("asyncio", main)


def test_close_with_open_connections(pki: CertPair, loop_name: str) -> None:
    """aclose() ends open sessions with close_notify, after their echo."""

    async def main() -> None:
        server = EchoServer(server_config(pki))
        await server.start()
        ctx = ssl.create_default_context(cafile=str(pki.cert))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=ctx, server_hostname="localhost"
        )
        writer.write(b"pending")
        assert await reader.readexactly(7) == b"pending"
        # A second client that connects but never handshakes.
        _, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(10):
            # The accept happens on this loop's next turns; no event to await.
            while server.connections_open < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await server.aclose()
        assert await reader.read() == b""  # clean close_notify
        assert server.connections_open == 0
        for w in (writer, idle_writer):
            w.close()

    run(loop_name, main)


def test_mismatch_error_message() -> None:
    from tlsecho.client.echo import _Verifier

    v = _Verifier()
    v.add_sent(b"hello world")
    v.check(b"hel")
    with pytest.raises(EchoMismatchError, match="at byte 4: sent 0x6f, got 0x4f"):
        v.check(b"lO")
    v2 = _Verifier()
    v2.add_sent(b"ab")
    with pytest.raises(EchoMismatchError, match="more bytes back than were sent"):
        v2.check(b"abc")


def test_a_server_group_starts_all_or_none(pki: CertPair, loop_name: str) -> None:
    """Issue 22: one that cannot listen closes those already started (their
    ports are free again) and its error is the group's."""
    import socket

    from tlsecho.errors import ListenError
    from tlsecho.server.group import ServerGroup

    taken = socket.create_server(("127.0.0.1", 0))
    busy = taken.getsockname()[1]

    async def main() -> None:
        first = EchoServer(server_config(pki), name="first")
        second = EchoServer(
            ServerConfig(host="127.0.0.1", port=busy, cert=pki.cert, key=pki.key), name="second"
        )
        group = ServerGroup([first, second])
        with pytest.raises(ListenError, match="address already in use"):
            await group.start()
        port = first.port
        with socket.create_server(("127.0.0.1", port)):
            pass  # the first server let its port go
        async with ServerGroup([EchoServer(server_config(pki), name=n) for n in "ab"]) as ok:
            for srv in ok.servers:
                client = EchoClient(ClientConfig(host="localhost", port=srv.port, cafile=pki.cert))
                assert (await client.send(["hi"])).received == 2
        assert ok.summary() == "served 2 connections on 2 endpoints (terminated=2)"

    try:
        run(loop_name, main)
    finally:
        taken.close()
