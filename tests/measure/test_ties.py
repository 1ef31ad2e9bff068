"""Telling the fastest finalists apart: per-round median intervals and the contenders within noise."""

from __future__ import annotations

import numpy as np
import pytest

from optismith.measure.ties import Interval, contenders, round_interval


def test_the_interval_is_over_round_medians_in_milliseconds() -> None:
    medians = [0.001 * (1 + 0.01 * i) for i in range(30)]
    interval = round_interval(medians)
    assert interval.low_ms < interval.p50_ms < interval.high_ms
    assert interval.p50_ms == pytest.approx(float(np.median(medians)) * 1e3)
    assert 1.0 <= interval.low_ms and interval.high_ms <= 1.3
    with pytest.raises(ValueError, match="no rounds"):
        round_interval([])


def test_contenders_are_the_fastest_and_those_overlapping_it() -> None:
    intervals = {"a": Interval(1.0, 0.9, 1.1), "b": Interval(1.05, 1.0, 1.2), "c": Interval(1.5, 1.3, 1.7),
                 "d": Interval(1.2, 1.12, 1.3)}  # d overlaps b but not a, the fastest: not a contender
    assert contenders(intervals) == ["a", "b"]
    assert contenders({"a": Interval(1.0, 0.9, 1.1), "c": Interval(1.5, 1.3, 1.7)}) == ["a"]
    assert contenders({}) == []


def test_more_rounds_narrow_the_interval() -> None:
    rng = np.random.default_rng(0)
    few = round_interval(rng.normal(1e-3, 1e-4, 10))
    many = round_interval(rng.normal(1e-3, 1e-4, 400))
    assert many.high_ms - many.low_ms < (few.high_ms - few.low_ms) / 3
