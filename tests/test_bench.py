"""make bench's timing helper: ratios come from runs taken in alternation."""

from __future__ import annotations

from toolprior.experiments.bench import paired_times


def test_paired_times_alternates_and_returns_each_sides_median():
    calls: list[str] = []
    a_s, b_s = paired_times(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then a, b, a, b, ...
    assert a_s >= 0.0 and b_s >= 0.0
