"""The nul framing core, fed whole, byte by byte, with trailing bytes, and fuzzed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsecho.framing import NulFraming


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


@pytest.mark.parametrize("chunks", [[b"\x00"], [b"\x00abc"], [b"", b"\x00"]])
def test_nul_first_ends_at_once(chunks: list[bytes]) -> None:
    f = NulFraming()
    outs = []
    for c in chunks:
        if c:
            outs.append(f.receive_data(c))
    assert b"".join(outs) == b""
    assert f.terminated


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


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


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
