"""The statistics and timing loops behind the benchmark: known data, exact coverage, fake clocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optismith.measure.paired import RoundsPolicy, paired_rounds, serve_poisson
from optismith.measure.statistics import (
    is_stable,
    latency_stats,
    median_ci,
    median_ci_ranks,
    percentile,
    poisson_arrivals,
)


def _binomial_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def test_percentiles_interpolate_between_order_statistics() -> None:
    values = np.arange(1, 101, dtype=float)
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 90) == pytest.approx(90.1)
    assert percentile(values, 99) == pytest.approx(99.01)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_median_ci_ranks_match_the_textbook_values() -> None:
    # n=100: the 40th and 61st order statistics (1-based) bound the median with >= 95% confidence.
    assert median_ci_ranks(100) == (39, 60)
    assert median_ci_ranks(6) == (0, 5)  # 1 - 2/64 = 96.9%
    assert median_ci_ranks(5) == (0, 4)  # too few for 95%: the whole range, and is_stable refuses it
    assert median_ci_ranks(20) == (5, 14)


@given(st.integers(min_value=6, max_value=400))
@settings(max_examples=60, deadline=None)
def test_median_ci_ranks_are_the_tightest_with_enough_coverage(n: int) -> None:
    low, high = median_ci_ranks(n)
    assert high == n - 1 - low
    assert 1 - 2 * _binomial_cdf(low, n) >= 0.95
    # One rank tighter would not cover the median often enough.
    assert 1 - 2 * _binomial_cdf(low + 1, n) < 0.95


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials = 2000
    covered = 0
    for _ in range(trials):
        sample = rng.lognormal(mean=0.0, sigma=1.0, size=31)  # true median exp(0) = 1
        low, high = median_ci(sample)
        covered += low <= 1.0 <= high
    assert 0.94 <= covered / trials <= 0.995


def test_stability_rule() -> None:
    assert is_stable(np.full(20, 2.0), 0.05)
    assert not is_stable(np.full(5, 2.0), 0.05)  # too few samples to judge
    spread = np.linspace(1.0, 3.0, 30)  # CI of the median is about +-0.3 around 2
    assert not is_stable(spread, 0.05)
    assert is_stable(spread, 0.25)


def test_latency_stats_convert_seconds_to_milliseconds() -> None:
    stats = latency_stats(np.arange(1, 101) / 1000.0)
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.mean_ms == pytest.approx(50.5)
    assert (stats.ci95_low_ms, stats.ci95_high_ms) == (40.0, 61.0)
    assert stats.samples == 100


def test_poisson_arrivals_have_the_requested_rate() -> None:
    arrivals = poisson_arrivals(1000.0, 10.0, seed=1)
    assert abs(arrivals.size - 10000) < 400  # 4 standard deviations
    assert np.all(np.diff(arrivals) > 0) and arrivals[-1] < 10.0
    gaps = np.diff(arrivals)
    assert gaps.mean() == pytest.approx(1e-3, rel=0.05)
    assert gaps.std() == pytest.approx(1e-3, rel=0.1)  # exponential: std == mean
    np.testing.assert_array_equal(arrivals, poisson_arrivals(1000.0, 10.0, seed=1))
    with pytest.raises(ValueError):
        poisson_arrivals(0.0, 1.0)


def queue_latencies(arrivals: np.ndarray | list[float], service: np.ndarray | list[float]) -> np.ndarray:
    """The test's oracle: latency (waiting + service) at a single FIFO worker, by Lindley's recursion."""
    latencies, free_at = [], -math.inf
    for start, took in zip(arrivals, service, strict=True):
        free_at = max(start, free_at) + took
        latencies.append(free_at - start)
    return np.asarray(latencies)


def test_the_oracle_counts_waiting() -> None:
    latencies = queue_latencies([0.0, 1.0, 1.5, 5.0], [2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(latencies, [2.0, 3.0, 4.5, 2.0])  # the last waits 1 s for the worker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_server_run_matches_the_queueing_model() -> None:
    clock = FakeClock()
    service = 0.004
    run = serve_poisson(
        lambda: clock.advance(service), qps=150.0, duration_s=2.0, seed=5, clock=clock, wait=clock.advance
    )
    arrivals = poisson_arrivals(150.0, 2.0, seed=5)
    np.testing.assert_allclose(run.latencies_s, queue_latencies(arrivals, np.full(arrivals.size, service)))
    assert run.dropped == 0
    assert run.achieved_qps == pytest.approx(arrivals.size / 2.0, rel=0.02)
    assert run.latencies_s.min() >= service - 1e-12
    assert np.percentile(run.latencies_s, 99) > service  # some requests queued behind others


def test_overloaded_server_stops_admitting_requests() -> None:
    clock = FakeClock()
    run = serve_poisson(lambda: clock.advance(0.01), qps=1000.0, duration_s=1.0, clock=clock, wait=clock.advance)
    assert run.dropped > 0
    assert run.achieved_qps == pytest.approx(100.0, rel=0.05)  # the worker's capacity, not the offered rate


def test_paired_rounds_alternate_the_order_and_stop_when_stable() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def variant() -> None:
        calls.append("v")
        clock.advance(0.001)

    def baseline() -> None:
        calls.append("b")
        clock.advance(0.003)

    policy = RoundsPolicy(warmup=2, min_rounds=8, budget_s=100.0, stability=0.05)
    times = paired_rounds(variant, baseline, policy, clock=clock)
    assert times.stable and times.rounds == 8  # constant latencies are stable at the first check
    assert calls[:4] == ["v", "b", "v", "b"]  # warm-up
    # Round 0 baseline first, round 1 variant first; each timed call follows an untimed call of its own
    # kind, so neither pays for the other runtime's threads and caches.
    assert "".join(calls[4:12]) == "bbvvvvbb"
    assert times.baseline_s is not None
    np.testing.assert_allclose(times.variant_s, 0.001)
    np.testing.assert_allclose(times.baseline_s, 0.003)


def test_paired_rounds_give_up_when_the_budget_is_spent() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(0)
    policy = RoundsPolicy(warmup=0, min_rounds=10, budget_s=0.05, stability=0.01)
    times = paired_rounds(lambda: clock.advance(rng.uniform(0.001, 0.01)), None, policy, clock=clock)
    assert not times.stable
    assert times.baseline_s is None
    assert 10 <= times.rounds <= 20  # min_rounds is honoured even past the budget, then it stops


def test_paired_rounds_keep_going_until_stable() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(1)
    policy = RoundsPolicy(warmup=0, min_rounds=10, budget_s=1e9, stability=0.05)
    times = paired_rounds(lambda: clock.advance(rng.uniform(0.9, 1.1)), None, policy, clock=clock)
    assert times.stable
    assert times.rounds > 10  # +-10% noise needs more than 10 rounds to pin the median within 5%
    assert is_stable(times.variant_s, 0.05)
