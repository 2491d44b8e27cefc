"""--fault specs, the choice of a fault, the alert record."""

from __future__ import annotations

import pytest

from tlsecho.faults import FaultSpec, alert_record, parse_fault, pick


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("stall", FaultSpec("stall")),
        ("alert=handshake_failure", FaultSpec("alert", "handshake_failure")),
        (
            "reset-after-hello@flaky.test~0.25",
            FaultSpec("reset-after-hello", None, "flaky.test", 0.25),
        ),
        ("close-after-hello~1", FaultSpec("close-after-hello", probability=1.0)),
    ],
)
def test_parse(text: str, spec: FaultSpec) -> None:
    assert parse_fault(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode", "unknown fault 'explode'"),
        ("alert", "takes a value"),
        ("stall=3", "takes no value"),
        ("alert=nonsense", "unknown alert 'nonsense'"),
        ("stall~2", "must be 0 to 1"),
        ("stall~often", "is not a probability"),
        ("stall@", "@ needs a server name"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_pick_by_sni_and_probability() -> None:
    faults = [parse_fault("stall@a.test"), parse_fault("alert=internal_error~0.5")]
    assert pick(faults, "A.TEST") == faults[0]  # server names compare without case
    assert pick(faults, "b.test", dice=lambda: 0.49) == faults[1]
    assert pick(faults, "b.test", dice=lambda: 0.5) is None
    assert pick(faults, None, dice=lambda: 0.0) == faults[1]
    assert faults[1].label == "alert=internal_error" and faults[0].label == "stall"


def test_alert_record() -> None:
    assert alert_record(70) == bytes.fromhex("15030300020246")


def test_echo_faults() -> None:
    from tlsecho.faults import EchoFault
    from tlsecho.framing import make_framing

    limit = EchoFault(make_framing("nul"), parse_fault("limit=5"))
    assert limit.receive_data(b"abc") == b"abc" and not limit.finished
    assert limit.receive_data(b"defgh") == b"de" and limit.finished
    assert (limit.bytes_in, limit.bytes_out) == (8, 8)  # what the echo would have been
    stall = EchoFault(make_framing("raw"), parse_fault("stall-after=2"))
    assert stall.receive_data(b"abcd") == b"ab" and not stall.finished
    assert stall.receive_data(b"ef") == b"" and not stall.finished  # silent, not over
    assert stall.receive_data(b"") == b"" and stall.finished  # until the client ends it
    zero = EchoFault(make_framing("nul"), parse_fault("limit=0"))
    assert zero.finished


@pytest.mark.parametrize("text", ["limit", "limit=-1", "stall-after=x"])
def test_echo_fault_needs_a_byte_count(text: str) -> None:
    with pytest.raises(ValueError, match="takes"):
        parse_fault(text)
