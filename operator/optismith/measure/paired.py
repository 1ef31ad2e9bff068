"""Timing loops: paired rounds of a variant against the baseline, and a Poisson-arrival server run.

Pairing both models in the same rounds, alternating which one goes first, makes the speedup immune to
slow drift (thermal throttling, a neighbour's job starting) that would bias back-to-back measurements.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optismith.measure.statistics import is_stable, poisson_arrivals

Clock = Callable[[], float]
Call = Callable[[], object]

# sleep() overshoots by tens of microseconds; the last stretch before an arrival is spun instead.
_SPIN_SECONDS = 0.0005
# An overloaded server would queue forever: stop admitting requests after this multiple of the duration.
_OVERLOAD_FACTOR = 2.0


@dataclass(frozen=True)
class RoundsPolicy:
    warmup: int
    min_rounds: int
    budget_s: float  # includes warm-up; rounds continue past it only until min_rounds
    stability: float  # fraction: the median's 95% CI must lie within this of the median
    max_rounds: int = 200_000


@dataclass(frozen=True)
class PairedTimes:
    variant_s: np.ndarray
    baseline_s: np.ndarray | None
    stable: bool

    @property
    def rounds(self) -> int:
        return int(self.variant_s.size)


def _timed(call: Call, clock: Clock) -> float:
    started = clock()
    call()
    return clock() - started


def _timed_after_own_call(call: Call, clock: Clock) -> float:
    """Time a call right after an untimed call of the same model. Timed straight after the other side, a
    call pays for the other runtime's still-spinning threads and evicted caches, and that penalty differs
    by runtime (measured 1.1-2.3x on MobileNetV2, bench/paired_penalty.py), which mis-ranked variants."""
    call()
    return _timed(call, clock)


def paired_rounds(variant: Call, baseline: Call | None, policy: RoundsPolicy,
                  clock: Clock = time.perf_counter) -> PairedTimes:
    """Warm both up, then run rounds (baseline and variant once each, order alternating) until the
    variant's median is stable or the budget is spent. Without a baseline, rounds time only `variant`."""
    started = clock()
    for _ in range(policy.warmup):
        variant()
        if baseline is not None:
            baseline()
    variant_times: list[float] = []
    baseline_times: list[float] = []
    next_check = policy.min_rounds
    stable = False
    while True:
        if baseline is None:
            variant_times.append(_timed(variant, clock))
        elif len(variant_times) % 2 == 0:
            baseline_times.append(_timed_after_own_call(baseline, clock))
            variant_times.append(_timed_after_own_call(variant, clock))
        else:
            variant_times.append(_timed_after_own_call(variant, clock))
            baseline_times.append(_timed_after_own_call(baseline, clock))
        count = len(variant_times)
        if count < policy.min_rounds:
            continue
        # Judging stability costs a sort, so it is re-checked after every ~10% more rounds.
        if count >= next_check:
            if is_stable(variant_times, policy.stability):
                stable = True
                break
            next_check = count + max(1, count // 10)
        if clock() - started >= policy.budget_s or count >= policy.max_rounds:
            break
    return PairedTimes(
        variant_s=np.asarray(variant_times),
        baseline_s=np.asarray(baseline_times) if baseline is not None else None,
        stable=stable,
    )


def precise_wait(seconds: float) -> None:
    if seconds <= 0:
        return
    deadline = time.perf_counter() + seconds
    if seconds > _SPIN_SECONDS:
        time.sleep(seconds - _SPIN_SECONDS)
    while time.perf_counter() < deadline:
        pass


@dataclass(frozen=True)
class ServerRun:
    offered_qps: float
    achieved_qps: float
    latencies_s: np.ndarray  # queueing + service, per completed request
    dropped: int  # arrivals never served because the server fell too far behind


def serve_poisson(serve: Call, qps: float, duration_s: float, *, seed: int = 0,
                  clock: Clock = time.perf_counter, wait: Callable[[float], None] = precise_wait) -> ServerRun:
    """Replay Poisson arrivals at `qps` against one worker in real time; a request's latency runs from
    its arrival (not from when the worker picked it up), so queueing delay counts."""
    arrivals = poisson_arrivals(qps, duration_s, seed)
    latencies: list[float] = []
    started = clock()
    finished = 0.0
    for arrival in arrivals:
        now = clock() - started
        if now > _OVERLOAD_FACTOR * duration_s:
            break
        if now < arrival:
            wait(arrival - now)
        serve()
        finished = clock() - started
        latencies.append(finished - arrival)
    completed = len(latencies)
    return ServerRun(
        offered_qps=qps,
        achieved_qps=completed / max(duration_s, finished) if completed else 0.0,
        latencies_s=np.asarray(latencies),
        dropped=int(arrivals.size - completed),
    )
