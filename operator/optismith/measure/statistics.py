"""The statistics behind honest latency numbers, as small pure functions.

Latency distributions are skewed and heavy-tailed, so the headline is the median with a
distribution-free confidence interval (order statistics of a Binomial(n, 1/2)), not mean ± stddev.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from optismith.results import LatencyStats

# Below this many samples no pair of order statistics covers the median with 95% confidence.
MIN_SAMPLES_FOR_CI = 6


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (0..100), linearly interpolated between order statistics."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(data, q))


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (low, high) of the order statistics bounding the median with at least `confidence`.

    The number of samples below the true median is Binomial(n, 1/2), so [x_(l), x_(n-1-l)] covers it
    with probability 1 - 2 * P(B <= l). Returns (0, n - 1) when n is too small for the confidence.
    """
    if n < 1:
        raise ValueError("no samples")
    alpha_half = (1.0 - confidence) / 2.0
    log_half_n = -n * math.log(2.0)
    cumulative = 0.0
    best = -1
    for k in range(n // 2 + 1):
        log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n
        cumulative += math.exp(log_pmf)
        if cumulative > alpha_half:
            break
        best = k
    # x_(best) lies above the median only if at most `best` samples fall below it: P(B <= best) <= alpha/2.
    if best < 0:
        return 0, n - 1
    return best, n - 1 - best


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median."""
    data = np.sort(np.asarray(values, dtype=np.float64))
    if data.size == 0:
        raise ValueError("confidence interval of no values")
    low, high = median_ci_ranks(int(data.size), confidence)
    return float(data[low]), float(data[high])


def is_stable(values: Sequence[float] | np.ndarray, tolerance: float, confidence: float = 0.95) -> bool:
    """True when both ends of the median's confidence interval lie within `tolerance` (a fraction) of it."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < MIN_SAMPLES_FOR_CI:
        return False
    median = float(np.median(data))
    low, high = median_ci(data, confidence)
    return max(median - low, high - median) <= tolerance * abs(median)


def latency_stats(seconds: Sequence[float] | np.ndarray) -> LatencyStats:
    """Summary of latencies given in seconds, reported in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no latencies")
    low, high = median_ci(ms)
    return LatencyStats(
        p50_ms=percentile(ms, 50), p90_ms=percentile(ms, 90), p99_ms=percentile(ms, 99),
        mean_ms=float(ms.mean()), ci95_low_ms=low, ci95_high_ms=high, samples=int(ms.size),
    )


def poisson_arrivals(rate_per_s: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds from 0) of a Poisson process: exponential gaps with mean 1/rate."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    rng = np.random.default_rng(seed)
    expected = rate_per_s * duration_s
    # Draw enough gaps in one go for all but astronomically unlikely cases, then top up if needed.
    count = int(expected + 6.0 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, size=count))
    while times[-1] < duration_s:
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate_per_s, size=count))
        times = np.concatenate([times, more])
    return times[times < duration_s]
