"""LoopThread (tlsecho.server.group): results, errors and a timeout that
says what did not finish (the pytest fixtures' start-up messages)."""

from __future__ import annotations

import asyncio

import pytest

from tlsecho.server.group import LoopThread


async def _answer(value: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return value


async def _fail() -> None:
    raise ValueError("boom")


def test_result_error_and_timeout() -> None:
    thread = LoopThread("test")
    try:
        assert thread.call(_answer(42)) == 42
        with pytest.raises(ValueError, match="boom"):
            thread.call(_fail())
        with pytest.raises(TimeoutError, match=r"^the server's start did not finish within 0.1 s$"):
            thread.call(_answer(1, delay=30), timeout=0.1, what="the server's start")
        assert thread.call(_answer(7)) == 7  # the loop goes on after a timeout
    finally:
        thread.close()
