"""Opening a client connection: TCP (with its PROXY header, if asked for),
then TLS through asyncio, sending the alert of a failed handshake as curl does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from asyncio import sslproto

from tlsecho.config import ClientConfig
from tlsecho.wire.proxy_protocol import build_header

__all__ = ["connect_tcp", "open_tls"]


class _AlertingTLS(sslproto.SSLProtocol):
    """asyncio's TLS protocol, which on a failed handshake also sends the alert
    OpenSSL wrote (``unknown_ca``, ``certificate_expired``, ...).

    asyncio closes the socket with that alert still in its memory BIO, so a
    server that our client refused logged only "closed without close_notify"
    where curl's refusal shows as "tlsv1 alert unknown ca".
    """

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            # Best effort: the handshake already failed and is reported as such.
            with contextlib.suppress(Exception):
                self._process_outgoing()  # type: ignore[attr-defined]  # not in typeshed
        super()._on_handshake_complete(handshake_exc)


# The hook rests on asyncio internals (3.11+); without them, open as asyncio does.
_CAN_ALERT = all(
    callable(getattr(sslproto.SSLProtocol, name, None))
    for name in ("_on_handshake_complete", "_process_outgoing")
)


async def open_tls(
    sock: socket.socket, ctx: ssl.SSLContext, server_hostname: str | None, handshake_timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection(sock=..., ssl=...)``, sending the alert of a
    failed handshake (see `_AlertingTLS`)."""
    if not _CAN_ALERT:
        return await asyncio.open_connection(
            sock=sock,
            ssl=ctx,
            server_hostname=server_hostname,
            ssl_handshake_timeout=handshake_timeout,
        )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    waiter = loop.create_future()
    tls = _AlertingTLS(
        loop,
        protocol,
        ctx,
        waiter,
        server_side=False,
        server_hostname=server_hostname,
        # typeshed says int; asyncio takes any number of seconds
        ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
    )
    transport, _ = await loop.create_connection(lambda: tls, sock=sock)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    app = tls._app_transport  # what loop.create_connection(ssl=...) hands out
    return reader, asyncio.StreamWriter(app, protocol, reader, loop)


async def connect_tcp(config: ClientConfig) -> socket.socket:
    """A connected TCP socket (that has sent its PROXY header, if configured)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:  # cancelled (the timeout): no socket left open
            sock.close()
            raise
        if config.proxy_header is not None:
            src, dst = sock.getsockname()[:2], sock.getpeername()[:2]
            try:
                await loop.sock_sendall(sock, build_header(config.proxy_header, src, dst))
            except BaseException:
                sock.close()
                raise
        return sock
    raise last or OSError(f"no address for {config.host}")
