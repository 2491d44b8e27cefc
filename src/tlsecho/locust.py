"""Locust users for load from many machines (``pip install tlsecho[locust]``).

    locust -f examples/locustfile.py --master
    locust -f examples/locustfile.py --worker --master-host MASTER   # on each load machine

:class:`TLSEchoUser` speaks to ``tlsecho serve`` over the standard ``ssl``
module (which Locust's gevent makes cooperative), checks every echo byte for
byte, and reports each exchange to Locust's statistics: a wrong or short echo
is a failure, never a silent success.

Settings come from environment variables, so the same locustfile runs on
every worker: ``TLSECHO_HOST`` (default ``localhost``), ``TLSECHO_PORT``
(10000), ``TLSECHO_CAFILE`` (default: the system store), ``TLSECHO_INSECURE``
(``1`` to skip verification), ``TLSECHO_SIZE`` (pingpong message size, 64).
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import time
from typing import Any

from locust import User, between, task

__all__ = ["TLSEchoUser"]


def _context() -> ssl.SSLContext:
    cafile = os.environ.get("TLSECHO_CAFILE")
    ctx = ssl.create_default_context(cafile=cafile or None)
    if os.environ.get("TLSECHO_INSECURE") == "1":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class EchoError(Exception):
    """The echo was wrong or short."""


class TLSEchoUser(User):
    """One simulated client: a persistent session for ``pingpong`` and a new
    connection per message (the original client) for ``connect``."""

    abstract = True
    wait_time = between(0.01, 0.05)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.target = (
            os.environ.get("TLSECHO_HOST", "localhost"),
            int(os.environ.get("TLSECHO_PORT", "10000")),
        )
        self.size = int(os.environ.get("TLSECHO_SIZE", "64"))
        self.ctx = _context()
        self.session: ssl.SSLSocket | None = None
        self.rng = random.Random()

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(self.target, timeout=10)
        return self.ctx.wrap_socket(raw, server_hostname=self.target[0])

    def _report(self, name: str, started: float, length: int, exc: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="tls",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exc,
            context={},
        )

    def on_stop(self) -> None:
        if self.session is not None:
            try:
                self.session.sendall(b"\x00")
                self.session.close()
            except OSError:
                pass
            self.session = None

    @task(4)
    def pingpong(self) -> None:
        """One message on a persistent session, echo checked."""
        data = bytes(self.rng.randrange(1, 256) for _ in range(self.size))
        started = time.perf_counter()
        try:
            if self.session is None:
                self.session = self._connect()
            self.session.sendall(data)
            got = bytearray()
            while len(got) < len(data):
                chunk = self.session.recv(len(data) - len(got))
                if not chunk:
                    raise EchoError(f"closed after {len(got)} of {len(data)} bytes")
                got += chunk
            if got != data:
                raise EchoError("echo mismatch")
        except (OSError, EchoError) as exc:
            self.session = None
            self._report("pingpong", started, 0, exc)
            return
        self._report("pingpong", started, len(data), None)

    @task(1)
    def connect(self) -> None:
        """A new TLS connection for one message, as the original client does."""
        data = b"This is the message. It will be sent in parts."
        started = time.perf_counter()
        try:
            with self._connect() as s:
                s.sendall(data + b"\x00")
                got = b""
                while chunk := s.recv(4096):
                    got += chunk
            if got != data:
                raise EchoError("echo mismatch")
        except (OSError, EchoError) as exc:
            self._report("connect", started, 0, exc)
            return
        self._report("connect", started, len(data), None)
