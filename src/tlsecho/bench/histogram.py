"""A log-linear latency histogram (the HdrHistogram idea, in pure Python).

Values are nanoseconds. Each power of two is split into 128 linear
sub-buckets, so any recorded value is known to within 1/128 (< 0.8 %) —
percentiles come from counts, never from averages. Histograms from several
processes merge by adding counts.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["Histogram"]

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS


def _index(value: int) -> int:
    if value < _SUB:
        return max(0, value)
    exp = value.bit_length() - _SUB_BITS - 1  # value >> exp is in [128, 255]
    return _SUB + (exp << _SUB_BITS) + (value >> exp) - _SUB


def _value(index: int) -> int:
    """The highest value that maps to ``index`` (a conservative upper bound)."""
    if index < _SUB:
        return index
    exp, sub = divmod(index - _SUB, _SUB)
    return ((sub + _SUB) << exp) + (1 << exp) - 1


class Histogram:
    """Counts of values in log-linear buckets."""

    __slots__ = ("counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one value (nanoseconds)."""
        self.counts[_index(value)] += 1
        if not self.total or value < self.min:
            self.min = value
        self.max = max(self.max, value)
        self.total += 1

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts."""
        self.counts.update(other.counts)
        if other.total:
            self.min = other.min if not self.total else min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.total += other.total

    def percentile(self, p: float) -> int:
        """The value at or below which ``p`` percent of the values fall."""
        if not self.total:
            return 0
        if p >= 100:
            return self.max
        rank = max(1, int(self.total * p / 100 + 0.999999))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(_value(index), self.max)
        return self.max

    def to_dict(self) -> dict[str, object]:
        """A JSON- and pickle-friendly form."""
        return {"counts": dict(self.counts), "min": self.min, "max": self.max, "total": self.total}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Histogram:
        h = cls()
        counts = d["counts"]
        assert isinstance(counts, dict)
        h.counts.update({int(k): int(v) for k, v in counts.items()})
        h.min, h.max, h.total = int(d["min"]), int(d["max"]), int(d["total"])  # type: ignore[call-overload]
        return h
