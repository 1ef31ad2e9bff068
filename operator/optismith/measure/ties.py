"""Whether the fastest finalists are told apart: each finalist's median latency with a 95% confidence
interval taken over its per-round medians (the calls of one burst share a round's conditions, so
counting them as independent samples would make the interval too narrow on a drifting host), and the
finalists whose interval overlaps the fastest's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from optismith.measure.statistics import median_ci


@dataclass(frozen=True)
class Interval:
    """A median latency and its 95% confidence interval, in milliseconds."""

    p50_ms: float
    low_ms: float
    high_ms: float

    def overlaps(self, other: Interval) -> bool:
        return self.low_ms <= other.high_ms and other.low_ms <= self.high_ms

    def describe(self) -> str:
        return f"{self.p50_ms:.3f} ms [{self.low_ms:.3f}, {self.high_ms:.3f}]"


def round_interval(round_medians_s: Sequence[float]) -> Interval:
    """The median of a candidate's round medians (seconds) and its distribution-free 95% CI, in ms."""
    data = np.asarray(round_medians_s, dtype=np.float64) * 1e3
    if data.size == 0:
        raise ValueError("no rounds to take a confidence interval over")
    low, high = median_ci(data)
    return Interval(p50_ms=float(np.median(data)), low_ms=low, high_ms=high)


def contenders(intervals: Mapping[str, Interval]) -> list[str]:
    """The fastest candidate (lowest median) first, then every other one whose interval overlaps its
    interval, fastest first: one name means the fastest is known; more mean a tie within noise."""
    if not intervals:
        return []
    ranked = sorted(intervals, key=lambda name: (intervals[name].p50_ms, name))
    fastest = intervals[ranked[0]]
    return [ranked[0]] + [name for name in ranked[1:] if intervals[name].overlaps(fastest)]
