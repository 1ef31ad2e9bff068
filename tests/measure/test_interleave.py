"""Interleaved rounds: every candidate once per round in a shuffled order, bursts sized to the candidate,
fast candidates settled with an untimed call, and stopping on budget after the minimum rounds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from optismith.measure.interleave import RoundsPlan, Timings, burst_size, interleaved_rounds


class FakeClock:
    """Time advances only when a fake model runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _model(clock: FakeClock, seconds: float, log: list[str], name: str) -> Callable[[], None]:
    def call() -> None:
        clock.now += seconds
        log.append(name)

    return call


def test_every_round_runs_every_candidate_in_a_shuffled_order() -> None:
    clock = FakeClock()
    log: list[str] = []
    calls = {name: _model(clock, 0.05, log, name) for name in ("a", "b", "c", "d")}
    plan = RoundsPlan(budget_s=1e9, min_rounds=30, max_rounds=30, warmup_calls=1, burst_s=0.05)
    timings = interleaved_rounds(calls, plan, clock=clock)
    log = log[4:]  # warm-up
    rounds = [log[i : i + 4] for i in range(0, len(log), 4)]
    assert len(rounds) == 30 and all(sorted(r) == ["a", "b", "c", "d"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 5  # the order changes from round to round
    firsts = {r[0] for r in rounds}
    assert firsts == {"a", "b", "c", "d"}  # no candidate always follows the same one
    assert all(t.calls == pytest.approx([0.05] * 30) for t in timings.values())


def test_bursts_fit_the_candidate_and_fast_ones_get_an_untimed_call_first() -> None:
    clock = FakeClock()
    log: list[str] = []
    calls = {"fast": _model(clock, 0.001, log, "fast"), "slow": _model(clock, 0.5, log, "slow")}
    plan = RoundsPlan(budget_s=1e9, min_rounds=3, max_rounds=3, warmup_calls=2, burst_s=0.005, settle_s=0.0025,
                      max_burst=25)
    timings = interleaved_rounds(calls, plan, clock=clock)
    assert log.count("fast") == 2 + 3 * (3 + 5)  # warm-up, then per round 2.5 ms untimed + a 5 ms burst
    assert log.count("slow") == 2 + 3 * 1  # slow: one timed call per round, nothing untimed
    assert len(timings["fast"].calls) == 15 and len(timings["fast"].round_medians) == 3


def test_a_fast_candidate_settles_for_at_least_one_call_and_a_slow_one_not_at_all() -> None:
    clock = FakeClock()
    log: list[str] = []
    calls = {"fast": _model(clock, 0.001, log, "fast"), "slow": _model(clock, 0.03, log, "slow")}
    plan = RoundsPlan(budget_s=1e9, min_rounds=2, max_rounds=2, warmup_calls=1, burst_s=0.001, settle_s=0.0)
    interleaved_rounds(calls, plan, clock=clock)
    assert log.count("fast") == 1 + 2 * (1 + 1)
    assert log.count("slow") == 1 + 2 * 1


def test_rounds_stop_once_the_budget_is_spent_but_not_before_the_minimum() -> None:
    clock = FakeClock()
    calls = {"a": _model(clock, 1.0, [], "a")}
    assert len(interleaved_rounds(calls, RoundsPlan(budget_s=5.0, min_rounds=2), clock=clock)["a"].calls) == 5
    assert len(interleaved_rounds(calls, RoundsPlan(budget_s=0.5, min_rounds=4), clock=clock)["a"].calls) == 4


@pytest.mark.parametrize(("latency", "expected"), [(0.0, 25), (1e-5, 25), (0.001, 5), (0.004, 1), (2.0, 1)])
def test_burst_size(latency: float, expected: int) -> None:
    assert burst_size(latency, RoundsPlan(budget_s=1, burst_s=0.005, max_burst=25)) == expected


def test_summary_reports_percentiles_drift_and_stability() -> None:
    steady = Timings(calls=[0.001] * 50 + [0.002] * 10, round_medians=[0.001] * 10 + [0.0011] * 10)
    summary = steady.summary(stability=0.05)
    assert summary["p50_ms"] == pytest.approx(1.0) and summary["p90_ms"] == pytest.approx(2.0)
    assert summary["drift"] == pytest.approx(1.1) and summary["stable"] and summary["rounds"] == 20
    noisy = Timings(calls=list(np.random.default_rng(0).uniform(0.001, 0.01, size=12)), round_medians=[0.005])
    assert not noisy.summary(stability=0.05)["stable"]


def test_rounds_go_on_past_the_budget_until_settled_or_the_overtime_is_spent() -> None:
    clock = FakeClock()
    calls = {"a": _model(clock, 1.0, [], "a")}
    asked: list[int] = []

    def settled_after(rounds: int) -> Callable[[object], bool]:
        def settled(timings: object) -> bool:
            count = len(timings["a"].round_medians)  # type: ignore[index]
            asked.append(count)
            return count >= rounds
        return settled

    plan = RoundsPlan(budget_s=3.0, min_rounds=2, overtime_s=4.0, warmup_calls=1)
    assert len(interleaved_rounds(calls, plan, clock=clock, settled=settled_after(5))["a"].calls) == 5
    assert asked == [3, 4, 5]  # asked only once the budget was spent, after every round from then on
    asked.clear()
    # Never settled: the overtime (4 s, from where the budget ran out after 3 rounds) ends it.
    assert len(interleaved_rounds(calls, plan, clock=clock, settled=settled_after(99))["a"].calls) == 7
    asked.clear()
    no_overtime = RoundsPlan(budget_s=3.0, min_rounds=2, warmup_calls=1)
    assert len(interleaved_rounds(calls, no_overtime, clock=clock, settled=settled_after(99))["a"].calls) == 3
    assert asked == []
