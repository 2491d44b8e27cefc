"""The nul framing core, fed whole, byte by byte, with trailing bytes, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.strategies import split
from tlsecho.wire.framing import LineFraming, LineTooLongError, NulFraming, RawFraming, make_framing


def feed_all(chunks: list[bytes], eof: bool = False) -> tuple[bytes, NulFraming]:
    f = NulFraming()
    out = b"".join(f.receive_data(c) for c in chunks)
    if eof:
        out += f.receive_data(b"")
    return out, f


def test_whole_message() -> None:
    out, f = feed_all([b"This is the message. It will be sent in parts.\x00"])
    assert out == b"This is the message. It will be sent in parts."
    assert f.finished and f.terminated
    assert (f.bytes_in, f.bytes_out, f.discarded) == (47, 46, 0)


def test_byte_by_byte() -> None:
    msg = b"hello world\x00"
    out, f = feed_all([bytes([b]) for b in msg])
    assert out == b"hello world"
    assert f.terminated


def test_nul_mid_chunk_is_the_end_not_echoed() -> None:
    # The original example only looked at the end of each read: this chunk
    # would have been echoed whole, NUL included, and the session gone on.
    out, f = feed_all([b"hello\x00world"])
    assert out == b"hello"
    assert f.finished and f.discarded == 5


def test_trailing_bytes_after_nul_are_discarded_and_counted() -> None:
    out, f = feed_all([b"ab\x00cd", b"more", b"\x00again"])
    assert out == b"ab"
    assert f.discarded == 2 + 4 + 6
    assert f.bytes_in == 5 + 4 + 6


@pytest.mark.parametrize(
    ("chunks", "discarded"),
    [([b"\x00"], 0), ([b"\x00abc"], 3), ([b"\x00", b"abc"], 3), ([b"\x00", b"a", b""], 1)],
)
def test_nul_first_ends_at_once(chunks: list[bytes], discarded: int) -> None:
    f = NulFraming()
    outs = [f.receive_data(c) for c in chunks]
    assert b"".join(outs) == b""
    assert f.terminated and f.finished
    assert f.discarded == discarded


def test_nul_alone_after_data() -> None:
    out, f = feed_all([b"abc", b"\x00"])
    assert out == b"abc" and f.terminated


def test_end_of_stream_without_nul() -> None:
    out, f = feed_all([b"abc", b"def"], eof=True)
    assert out == b"abcdef"
    assert f.finished and not f.terminated


def test_nothing_after_finish() -> None:
    f = NulFraming()
    f.receive_data(b"")
    assert f.receive_data(b"late") == b""
    assert f.discarded == 4


def test_echo_returns_same_object_without_copy() -> None:
    data = b"x" * 1000
    assert NulFraming().receive_data(data) is data


@given(st.data(), st.binary(max_size=2000).map(lambda b: b.replace(b"\x00", b"")))
def test_any_split_of_a_message_echoes_it(data: st.DataObject, msg: bytes) -> None:
    chunks = [c for c in data.draw(split(msg + b"\x00")) if c]
    out, f = feed_all(chunks)
    assert out == msg
    assert f.terminated and f.bytes_out == len(msg)


@given(st.data(), st.binary(max_size=2000))
def test_any_input_echoes_up_to_first_nul(data: st.DataObject, raw: bytes) -> None:
    chunks = [c for c in data.draw(split(raw)) if c]
    out, f = feed_all(chunks, eof=True)
    i = raw.find(b"\x00")
    assert out == (raw if i < 0 else raw[:i])
    assert f.bytes_in == len(raw)
    assert f.discarded == (0 if i < 0 else len(raw) - i - 1)
    assert f.terminated == (i >= 0)


# -- raw ------------------------------------------------------------------------
def test_raw_echoes_everything_until_eof() -> None:
    f = RawFraming()
    assert f.receive_data(b"a\x00b\n") == b"a\x00b\n"
    assert not f.finished
    assert f.receive_data(b"") == b""
    assert f.finished
    assert not f.terminated
    assert f.receive_data(b"late") == b""
    assert (f.bytes_in, f.bytes_out, f.discarded) == (8, 4, 4)


@given(st.data(), st.binary(max_size=2000))
def test_raw_any_split(data: st.DataObject, raw: bytes) -> None:
    f = RawFraming()
    out = b"".join(f.receive_data(c) for c in data.draw(split(raw)) if c)
    assert out == raw


# -- line -----------------------------------------------------------------------
def feed_lines(chunks: list[bytes], max_line: int = 64) -> tuple[list[bytes], LineFraming]:
    f = LineFraming(max_line)
    outs = [f.receive_data(c) for c in chunks if c]
    return outs, f


def test_line_whole_lines_echoed_at_newline() -> None:
    outs, f = feed_lines([b"one\ntw", b"o\r\n", b"three"])
    assert outs == [b"one\n", b"two\r\n", b""]
    assert not f.finished
    assert f.receive_data(b"") == b""
    assert f.finished
    assert f.discarded == 5  # "three": no newline at end of stream


def test_line_byte_by_byte() -> None:
    msg = b"alpha\nbeta\r\n\n"
    outs, _ = feed_lines([bytes([b]) for b in msg])
    assert b"".join(outs) == msg
    # Each line comes back whole, in one piece, when its newline arrives.
    assert [o for o in outs if o] == [b"alpha\n", b"beta\r\n", b"\n"]


def test_line_no_copy_for_complete_lines() -> None:
    data = b"x\n" * 100
    assert LineFraming().receive_data(data) is data


@pytest.mark.parametrize(
    ("chunks", "echo", "discarded"),
    [
        ([b"ok\n" + b"y" * 10 + b"\nmore\n"], b"ok\n", 16),  # too long mid-chunk
        ([b"abcd", b"efgh", b"ij\n"], b"", 11),  # too long across chunks
        ([b"x" * 10], b"", 10),  # max_line bytes, no newline yet: already too long
        ([b"ok\n", b"y" * 12], b"ok\n", 12),
    ],
)
def test_line_too_long(chunks: list[bytes], echo: bytes, discarded: int) -> None:
    outs, f = feed_lines(chunks, max_line=10)
    assert b"".join(outs) == echo
    assert f.finished
    assert isinstance(f.error, LineTooLongError)
    assert "longer than 10 bytes" in str(f.error)
    assert f.discarded == discarded


def test_line_exactly_max_line_is_fine() -> None:
    outs, f = feed_lines([b"123456789\n"], max_line=10)
    assert outs == [b"123456789\n"]
    assert f.error is None


@given(
    st.data(),
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
)
def test_line_any_split_echoes_every_complete_line(data: st.DataObject, lines: list[bytes]) -> None:
    msg = b"".join(line + b"\n" for line in lines)
    outs, f = feed_lines([c for c in data.draw(split(msg)) if c], max_line=31)
    assert b"".join(outs) == msg
    assert f.error is None
    # Every echo is a whole number of lines.
    assert all(o.endswith(b"\n") for o in outs if o)


@given(st.data(), st.binary(max_size=400), st.integers(1, 40))
def test_line_any_input_echoes_a_prefix_of_whole_lines(
    data: st.DataObject, raw: bytes, max_line: int
) -> None:
    f = LineFraming(max_line)
    out = b"".join(f.receive_data(c) for c in data.draw(split(raw)) if c)
    f.receive_data(b"")
    assert raw.startswith(out)
    assert out == b"" or out.endswith(b"\n")
    assert f.bytes_out + f.discarded == f.bytes_in == len(raw)
    # Every echoed line respects the limit; the error appears exactly when
    # the first over-long line does.
    lines = raw.split(b"\n")
    complete = [ln + b"\n" for ln in lines[:-1]]
    first_bad = next((i for i, ln in enumerate(complete) if len(ln) > max_line), None)
    partial_bad = len(lines[-1]) >= max_line
    if first_bad is None and not partial_bad:
        assert f.error is None
        assert out == b"".join(complete)
    else:
        assert isinstance(f.error, LineTooLongError)
        good = complete if first_bad is None else complete[:first_bad]
        assert out == b"".join(good)


def test_make_framing() -> None:
    assert isinstance(make_framing("nul"), NulFraming)
    assert isinstance(make_framing("raw"), RawFraming)
    lf = make_framing("line", max_line=5)
    assert isinstance(lf, LineFraming)
    assert lf.max_line == 5
    with pytest.raises(ValueError, match="unknown mode"):
        make_framing("bogus")  # type: ignore[arg-type]


def test_hello_framing_answers_once_and_echoes_nothing() -> None:
    from tlsecho.wire.framing import HelloFraming, make_framing

    f = make_framing("hello")
    assert isinstance(f, HelloFraming)
    assert f.receive_data(b"anything\x00") == b"" and not f.finished
    assert f.answer(b'{"a": 1}\n') == b'{"a": 1}\n' and f.finished
    assert (f.bytes_in, f.bytes_out, f.discarded) == (9, 9, 9)
    assert f.receive_data(b"") == b"" and not f.terminated
