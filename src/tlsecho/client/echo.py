"""The client of the original example: send a message in parts, end it, read
the echo, and check it byte for byte.

In mode ``nul`` the message ends with a NUL and the echo ends when the server
closes. In ``line`` and ``raw`` modes the session is persistent: a TLS client
cannot half-close, so the client sends its message, reads until it has the
same number of bytes back, then closes with close_notify.

The echo is compared as it arrives against the bytes sent but not yet echoed,
so a message of any size costs memory only for what is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tlsecho.client.errors import alert_message, map_connect_error, map_handshake_error
from tlsecho.client.opening import connect_tcp, open_tls
from tlsecho.config import DEFAULT_PARTS, ClientConfig
from tlsecho.errors import (
    ConfigError,
    EchoMismatchError,
    PeerError,
    setting,
)
from tlsecho.logs import get_logger
from tlsecho.tls import client_context
from tlsecho.wire.framing import NUL

__all__ = ["EchoClient", "EchoResult", "send"]

log = get_logger("client")
_TAG = {"tag": "echo_client"}
_READ_SIZE = 65536
# A hello answer is a few KiB; anything past this is not one.
_MAX_ANSWER = 1 << 20

#: The message, in parts: bytes, or str (sent as UTF-8).
Parts = Iterable[bytes | str] | AsyncIterable[bytes | str]


@dataclass(frozen=True)
class EchoResult:
    """What one exchange did."""

    sent: int
    """Message bytes sent (a terminating NUL not counted)."""
    received: int
    """Echo bytes received; equal to ``sent`` on success."""
    tls_version: str
    """Negotiated protocol, e.g. ``TLSv1.3``."""
    cipher: str
    """Negotiated cipher suite."""
    alpn: str | None = None
    """Negotiated ALPN protocol, if any."""


class _Verifier:
    """Compares the echo with the bytes sent, as both stream by."""

    __slots__ = ("expected", "offset", "received", "sent")

    def __init__(self) -> None:
        self.expected = bytearray()  # sent, not yet echoed
        self.offset = 0  # bytes echoed and verified so far
        self.sent = 0
        self.received = 0

    def add_sent(self, data: bytes) -> None:
        self.expected += data
        self.sent += len(data)

    def check(self, data: bytes) -> None:
        n = len(data)
        self.received += n
        head = self.expected[:n]
        if head != data:
            i = next((k for k in range(min(n, len(head))) if head[k] != data[k]), len(head))
            at = self.offset + i
            if i >= len(head):
                raise EchoMismatchError(
                    f"echo mismatch at byte {at}: got more bytes back than were sent "
                    f"(0x{data[i]:02x} after {at} bytes)"
                )
            hint = ""
            if at == 0 and data.startswith(b'{\n  "tlsecho"'):
                # A --mode hello server answers with its JSON whatever comes.
                hint = f" (the server answered JSON: use {setting('mode')} hello)"
            raise EchoMismatchError(
                f"echo mismatch at byte {at}: sent 0x{head[i]:02x}, got 0x{data[i]:02x}{hint}"
            )
        del self.expected[:n]
        self.offset += n


class EchoClient:
    """Sends messages to a tlsecho server and verifies the echo.

    Args:
        config: where to connect, what to trust and present, which framing.
        ssl_context: a ready client context (default: built from ``config``).
    """

    def __init__(
        self, config: ClientConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config or ClientConfig()
        self._ctx = ssl_context

    async def send(
        self,
        parts: Parts = DEFAULT_PARTS,
        *,
        on_echo: Callable[[bytes], None] | None = None,
    ) -> EchoResult:
        """Send ``parts``, end the message, read and verify the echo.

        Mode ``nul`` appends the NUL and reads until the server closes;
        ``line`` appends a newline when the message does not end with one;
        ``line`` and ``raw`` read until every byte sent is back, then close.

        Args:
            parts: the message, in the writes to make. In mode ``nul`` no
                part may contain a NUL.
            on_echo: called with each chunk of the echo as it arrives.

        Returns:
            The sizes and the negotiated parameters.

        Raises:
            ConfigError: a part contains a NUL byte in mode ``nul``.
            ConnectError, TlsHandshakeError: connecting failed.
            EchoMismatchError: the echo differed or ended early.
            PeerError: the connection failed or ``config.timeout`` passed.
        """
        cfg = self.config
        if cfg.mode == "hello":
            raise ConfigError(f"{setting('mode')} hello has no echo: use hello()")
        step = ["connecting"]
        try:
            async with asyncio.timeout(cfg.timeout):
                return await self._exchange(parts, on_echo, step)
        except TimeoutError:
            hint = ""
            if step[0].startswith("waiting for the echo"):
                # The classic cause: the server frames differently (nul/line).
                hint = f"; does the server use {setting('mode')} {cfg.mode}?"
            raise PeerError(f"timed out after {cfg.timeout:g} s {step[0]}{hint}") from None

    async def hello(self) -> dict[str, Any]:
        """Ask a ``--mode hello`` server what this client offered: connect,
        send nothing, read its JSON answer until close_notify.

        Raises:
            ConnectError, TlsHandshakeError: connecting failed.
            PeerError: no answer, one that is not JSON, or a timeout.
        """
        cfg = self.config
        step = ["connecting"]
        try:
            async with asyncio.timeout(cfg.timeout):
                reader, writer = await self._open(self._ctx or client_context(cfg), step)
                step[0] = "waiting for the answer"
                try:
                    data = b""
                    while chunk := await reader.read(_READ_SIZE):
                        data += chunk
                        if len(data) > _MAX_ANSWER:
                            raise PeerError(f"the answer is over {_MAX_ANSWER} bytes")
                except (ssl.SSLError, ConnectionError) as exc:
                    raise PeerError(f"connection lost reading the answer: {exc}") from None
                finally:
                    writer.close()
                    with contextlib.suppress(OSError, ssl.SSLError):
                        await writer.wait_closed()
        except TimeoutError:
            raise PeerError(f"timed out after {cfg.timeout:g} s {step[0]}") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise PeerError(
                f"the answer is not JSON ({len(data)} bytes): "
                f"is the server in {setting('mode')} hello?"
            ) from None
        if not isinstance(answer, dict):
            raise PeerError("the answer is not a JSON object")
        return answer

    async def _open(
        self, ctx: ssl.SSLContext, step: list[str]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP first, then TLS, so a timeout says which of the two it was."""
        cfg = self.config
        try:
            sock = await connect_tcp(cfg)
        except OSError as exc:
            raise map_connect_error(exc, cfg) from None
        step[0] = "in the TLS handshake"
        try:
            return await open_tls(sock, ctx, cfg.verify_name, cfg.timeout)
        except ssl.SSLError as exc:
            sock.close()
            raise map_handshake_error(exc, cfg) from None
        except OSError as exc:
            sock.close()
            raise map_connect_error(exc, cfg) from None
        except BaseException:
            sock.close()
            raise

    async def _exchange(
        self, parts: Parts, on_echo: Callable[[bytes], None] | None, step: list[str]
    ) -> EchoResult:
        cfg = self.config
        ctx = self._ctx or client_context(cfg)
        chatty = log.isEnabledFor(logging.INFO)
        log.info("connecting to %s port %s", cfg.host, cfg.port, extra=_TAG)
        reader, writer = await self._open(ctx, step)
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object else "-"
        cipher = ssl_object.cipher()[0] if ssl_object and ssl_object.cipher() else "-"
        alpn = ssl_object.selected_alpn_protocol() if ssl_object else None
        log.debug("connected: %s %s alpn=%s", version, cipher, alpn or "-", extra=_TAG)
        verifier = _Verifier()
        persistent = cfg.mode != "nul"
        all_sent = [False]

        def done() -> bool:
            return persistent and all_sent[0] and verifier.received >= verifier.sent

        reading = asyncio.ensure_future(_read_echo(reader, verifier, on_echo, done, chatty))
        try:
            step[0] = "sending"
            await self._send_all(parts, writer, verifier, reading, chatty)
            all_sent[0] = True
            if chatty:
                log.info("waiting for response", extra=_TAG)
            step[0] = f"waiting for the echo ({verifier.received} of {verifier.sent} bytes back)"
            if persistent and verifier.received >= verifier.sent:
                reading.cancel()  # everything is back already; the reader waits for more
                await asyncio.gather(reading, return_exceptions=True)
            else:
                await reading
        finally:
            if not reading.done():
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            if chatty:
                log.info("closing", extra=_TAG)
            writer.close()
            # The echo is already verified or already failed.
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if verifier.received < verifier.sent:
            closed = _closed_early(verifier)
            # Nothing back at all: the server refused us right after the
            # handshake, and only its log can say which of these it was.
            causes = []
            if verifier.received == 0 and alpn is None:
                causes.append(
                    f"no ALPN protocol was negotiated: does the server require {setting('alpn')}?"
                )
            if verifier.received == 0 and cfg.cert is not None:
                causes.append(
                    "does the server admit this client certificate's identity (--allow-*)?"
                )
            if causes:
                raise EchoMismatchError(f"{closed} ({'; '.join(causes)})")
            raise closed
        return EchoResult(verifier.sent, verifier.received, version, cipher, alpn)

    async def _send_all(
        self,
        parts: Parts,
        writer: asyncio.StreamWriter,
        verifier: _Verifier,
        reading: asyncio.Future[None],
        chatty: bool,
    ) -> None:
        """Write every part, then the framing's end (the NUL, or a last newline)."""
        mode = self.config.mode
        last = b""
        async for part in _aiter(parts):
            if not part:
                continue
            if mode == "nul" and NUL in part:
                at = verifier.sent + part.index(NUL)
                raise ConfigError(
                    f"the message has a NUL byte at offset {at}: "
                    f"the nul protocol ends the message there (use {setting('mode')} raw)"
                )
            if chatty:
                log.info("sending %r", part, extra=_TAG)
            verifier.add_sent(part)
            writer.write(part)
            last = part
            await _drain_or_fail(writer, reading, verifier)
        if mode == "nul":
            writer.write(NUL)
        elif mode == "line" and not last.endswith(b"\n"):
            # Only complete lines are echoed: end the last one.
            if chatty:
                log.info("sending %r", b"\n", extra=_TAG)
            verifier.add_sent(b"\n")
            writer.write(b"\n")
        await _drain_or_fail(writer, reading, verifier)


async def _read_echo(
    reader: asyncio.StreamReader,
    verifier: _Verifier,
    on_echo: Callable[[bytes], None] | None,
    done: Callable[[], bool],
    chatty: bool,
) -> None:
    """Read and verify the echo until the server closes (or, for a persistent
    session, until ``done()``)."""
    while not done():
        try:
            data = await reader.read(_READ_SIZE)
        except ssl.SSLError as exc:
            known = alert_message(exc)
            raise PeerError(
                known or f"TLS error while reading the echo: {exc.reason or exc}"
            ) from None
        except ConnectionError as exc:
            raise PeerError(
                f"connection lost after {verifier.received} of {verifier.sent} "
                f"echoed bytes: {exc.strerror or exc.__class__.__name__}"
            ) from None
        if not data:
            return
        if chatty:
            log.info("received %r", data, extra=_TAG)
        verifier.check(data)
        if on_echo is not None:
            on_echo(data)


def _as_bytes(part: object) -> bytes:
    if isinstance(part, str):
        return part.encode("utf-8")
    if isinstance(part, bytes | bytearray | memoryview):
        return bytes(part)
    raise ConfigError(f"message parts are bytes or str, not {type(part).__name__}")


async def _aiter(parts: Parts) -> AsyncIterator[bytes]:
    if isinstance(parts, AsyncIterable):
        async for p in parts:
            yield _as_bytes(p)
    else:
        for p in parts:
            yield _as_bytes(p)


def _closed_early(verifier: _Verifier) -> EchoMismatchError:
    return EchoMismatchError(
        f"server closed early after {verifier.received} of {verifier.sent} bytes"
    )


async def _drain_or_fail(
    writer: asyncio.StreamWriter, reading: asyncio.Future[None], verifier: _Verifier
) -> None:
    """Wait for the write buffer to drain; stop as soon as the reader has
    ended: the echo failed, or the server closed while we were still sending
    (writing on would only make asyncio log "SSL connection is closed" once
    per write)."""
    if reading.done():
        failure = reading.exception()
        if failure is not None:
            raise failure
        raise _closed_early(verifier)
    transport = writer.transport
    if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
        return  # not paused: no need to yield, so the parts go out back to back
    drain = asyncio.ensure_future(writer.drain())
    done, _ = await asyncio.wait({drain, reading}, return_when=asyncio.FIRST_COMPLETED)
    if drain in done:
        try:
            drain.result()
        except (ConnectionError, ssl.SSLError) as exc:
            if reading.done() and reading.exception() is not None:
                raise reading.exception() from None  # type: ignore[misc]
            raise PeerError(f"connection lost while sending: {exc}") from None
        return
    # The reader ended first: a mismatch, an error, or the server closed.
    drain.cancel()
    failure = reading.exception()
    if failure is not None:
        raise failure
    raise _closed_early(verifier)


async def send(
    config: ClientConfig | None = None,
    parts: Parts = DEFAULT_PARTS,
    *,
    ssl_context: ssl.SSLContext | None = None,
    on_echo: Callable[[bytes], None] | None = None,
) -> EchoResult:
    """Send one message and verify its echo (see :meth:`EchoClient.send`)."""
    return await EchoClient(config, ssl_context=ssl_context).send(parts, on_echo=on_echo)
