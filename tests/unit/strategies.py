"""Hypothesis strategies shared by the sans-IO tests."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st


@st.composite
def split(draw: st.DrawFn, data: bytes, max_cuts: int = 20) -> list[bytes]:
    """``data`` cut at arbitrary points into non-empty chunks."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_cuts)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]
