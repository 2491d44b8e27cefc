"""--fault specs, the choice of a fault, the alert record."""

from __future__ import annotations

import random

import pytest

from tlsecho.wire.faults import GARBAGE, FaultSpec, RecordFault, alert_record, parse_fault, pick


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
    from tlsecho.wire.faults import EchoFault
    from tlsecho.wire.framing import make_framing

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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slice=0", "at least 1 byte"),
        ("slice=10:x", r"BYTES\[:DELAY_MS\]"),
        ("slice=1:2:3", r"BYTES\[:DELAY_MS\]"),
        ("latency=-5", r"MS\[:JITTER_MS\]"),
        ("latency=inf", r"MS\[:JITTER_MS\]"),
        ("bandwidth=0.5", "at least 1 byte"),
        ("slow-handshake=soon", "SECONDS"),
        ("corrupt=1", "takes no value"),
        ("reset-after=x", "number of bytes"),
    ],
)
def test_record_fault_arguments(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def record(kind: int, body: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(body).to_bytes(2, "big") + body


def test_slice_cuts_everything_in_order() -> None:
    rf = RecordFault(parse_fault("slice=4:10"))
    rf.push(b"abcdefghij", "handshake", 100.0)
    rf.push(b"KLMN", "open", 100.0)
    assert rf.next_due() == 100.0 and rf.held() == 14
    assert rf.due(100.0) == [b"abcd"]
    assert rf.due(100.015) == [b"efgh"]
    # the second push never overtakes the first
    assert rf.due(100.05) == [b"ij", b"KLMN"] and rf.next_due() is None


def test_latency_holds_the_echo_not_the_handshake() -> None:
    rf = RecordFault(parse_fault("latency=100:20"), random.Random(1))
    rf.push(b"hs", "handshake", 0.0)
    rf.push(b"echo", "open", 0.0)
    assert rf.due(0.0) == [b"hs"]
    when = rf.next_due()
    assert when is not None and 0.08 <= when <= 0.12
    assert rf.due(when) == [b"echo"]


def test_bandwidth_keeps_the_rate_across_pushes() -> None:
    rf = RecordFault(parse_fault("bandwidth=1000"))
    for _ in range(10):  # 10 pushes of 100 bytes, all at once
        rf.push(b"x" * 100, "open", 0.0)
    times = []
    while (when := rf.next_due()) is not None:
        times.append(when)
        rf.due(when)
    assert times[0] == 0.0 and times[-1] == pytest.approx(0.9)  # 1000 B at 1000 B/s


def test_slow_handshake_holds_each_flight() -> None:
    rf = RecordFault(parse_fault("slow-handshake=0.5"))
    rf.push(b"flight", "handshake", 10.0)
    rf.push(b"echo", "open", 10.1)
    assert rf.due(10.4) == [] and rf.due(10.5) == [b"flight", b"echo"] and rf.flights == 1


def test_corrupt_flips_the_first_application_record_once() -> None:
    rf = RecordFault(parse_fault("corrupt"))
    hs = record(22, b"hello")
    first, second = record(23, b"secret"), record(23, b"more")
    rf.push(hs, "handshake", 0.0)
    rf.push(first + second, "open", 0.0)
    rf.push(record(23, b"later"), "open", 0.0)
    got = rf.due(0.0)
    assert got[0] == hs
    assert got[1][: len(first) - 1] == first[:-1] and got[1][len(first) - 1] == first[-1] ^ 0xFF
    assert got[1][len(first) :] == second and got[2] == record(23, b"later")


def test_the_other_record_faults() -> None:
    assert RecordFault(parse_fault("truncate")).truncate
    assert RecordFault(parse_fault("garbage-after-handshake")).after_handshake() == GARBAGE
    assert GARBAGE[0] not in (20, 21, 22, 23)  # no TLS content type
    plain = RecordFault(parse_fault("reset-mid-handshake"))
    assert not plain.truncate and plain.after_handshake() == b""
    plain.push(b"", "open", 0.0)
    assert plain.next_due() is None


def test_record_faults_need_the_membio_engine() -> None:
    from tlsecho.config import ServerConfig
    from tlsecho.errors import ConfigError

    spec = parse_fault("corrupt")
    assert ServerConfig(engine="membio", faults=(spec,)).faults == (spec,)
    with pytest.raises(
        ConfigError, match="corrupt acts on our TLS records: it needs engine membio"
    ):
        ServerConfig(engine="sslsocket", faults=(spec,))
    with pytest.raises(ConfigError, match="engine must be sslsocket or membio"):
        ServerConfig(engine="bogus")  # type: ignore[arg-type]
