"""The metrics' own logic (the scraped values are tested end to end in
tests/integration/test_observability.py)."""

from __future__ import annotations


def test_ja4_labels_are_bounded() -> None:
    from tlsecho.metrics import JA4_LABELS, Metrics

    m = Metrics(lambda: 0)
    labels = [m._ja4_label(f"t13d{i:06d}") for i in range(JA4_LABELS + 5)]
    assert labels[:JA4_LABELS] == [f"t13d{i:06d}" for i in range(JA4_LABELS)]
    assert labels[JA4_LABELS:] == ["other"] * 5
    assert m._ja4_label("t13d000000") == "t13d000000"  # a known one keeps its label
    assert m._ja4_label(None) == "malformed"
