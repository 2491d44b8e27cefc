"""Deadlines as a pure function of the time: an injected clock, no sleeps."""

from __future__ import annotations

import pytest

from tlsecho.server.connection import TRANSITIONS, State
from tlsecho.wire.deadlines import Deadlines, Expired, Limits

LIMITS = Limits(handshake=10.0, idle=300.0, session=None, close=5.0, linger=1.0)


def test_handshake_deadline_is_absolute() -> None:
    d = Deadlines(LIMITS, now=100.0)
    assert d.get_timer() == 110.0
    # Bytes dripping in during the handshake do not extend it.
    d.last_io = 109.0
    assert d.handle_timer(109.999) is None
    assert d.handle_timer(110.0) is Expired.HANDSHAKE
    assert d.get_timer() == 110.0


def test_open_idle_deadline_follows_the_last_byte() -> None:
    d = Deadlines(LIMITS, now=0.0)
    d.opened(now=2.0)
    assert d.get_timer() == 302.0
    d.last_io = 250.0
    assert d.get_timer() == 550.0
    assert d.handle_timer(549.0) is None
    assert d.handle_timer(550.0) is Expired.IDLE


def test_session_limit_comes_first_when_both_passed() -> None:
    d = Deadlines(Limits(10.0, idle=5.0, session=20.0, close=5.0, linger=1.0), now=0.0)
    d.opened(now=1.0)
    assert d.get_timer() == 6.0  # idle first
    d.last_io = 18.0
    assert d.get_timer() == 21.0  # the session limit, since idle moved on
    assert d.handle_timer(21.0) is Expired.SESSION
    assert d.handle_timer(100.0) is Expired.SESSION


def test_no_limits_while_open_means_no_timer() -> None:
    d = Deadlines(Limits(10.0, idle=None, session=None, close=5.0, linger=1.0), now=0.0)
    d.opened(now=1.0)
    assert d.get_timer() is None
    assert d.handle_timer(1e9) is None


def test_closing_has_its_own_deadline() -> None:
    d = Deadlines(LIMITS, now=0.0)
    d.opened(now=1.0)
    d.closing(now=50.0)
    assert d.get_timer() == 55.0
    # The idle limit no longer applies while closing.
    assert d.handle_timer(54.9) is None
    assert d.handle_timer(55.0) is Expired.CLOSE


@pytest.mark.parametrize(("close", "expected"), [(5.0, 11.0), (0.5, 10.5)])
def test_linger_is_the_shorter_of_linger_and_close(close: float, expected: float) -> None:
    d = Deadlines(Limits(10.0, idle=None, session=None, close=close, linger=1.0), now=0.0)
    d.lingering(now=10.0)
    assert d.get_timer() == expected
    assert d.handle_timer(expected - 0.01) is None
    assert d.handle_timer(expected) is Expired.CLOSE


def test_done_has_no_deadline() -> None:
    d = Deadlines(LIMITS, now=0.0)
    d.done()
    assert d.get_timer() is None
    assert d.handle_timer(1e9) is None


def test_every_state_can_close_and_closed_is_final() -> None:
    assert set(TRANSITIONS) == set(State)
    for state, targets in TRANSITIONS.items():
        assert (State.CLOSED in targets) == (state is not State.CLOSED)
    assert TRANSITIONS[State.CLOSED] == frozenset()
    # Forward only: PROXY header, ClientHello peek, handshake, then never back.
    before_tls = {State.PROXY, State.HELLO}
    assert not any(State.PROXY in targets for targets in TRANSITIONS.values())
    assert {s for s, t in TRANSITIONS.items() if State.HELLO in t} == {State.PROXY}
    assert {s for s, t in TRANSITIONS.items() if State.HANDSHAKE in t} == before_tls
