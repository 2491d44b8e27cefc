"""failure_reason: the short phrase each error becomes in logs and metrics."""

from __future__ import annotations

import errno
import ssl

import pytest

from tlsecho.errors import failure_reason


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
            "closed without close_notify",
        ),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "reset by peer"),
        (BrokenPipeError(errno.EPIPE, "pipe"), "broken pipe"),
        (OSError(errno.ETIMEDOUT, "timed out"), "etimedout"),
        (TimeoutError("handshake timed out"), "handshake timed out"),
    ],
)
def test_reasons(exc: BaseException, reason: str) -> None:
    assert failure_reason(exc) == reason
