"""Interleaved rounds: every candidate runs once per round, in a fresh random order each round, so slow
drift on a shared host (a neighbour's test suite starting, frequency changes) lands on all candidates
alike and ratios measured in one run stay comparable.

When a `settled` test is given and the plan has `overtime_s`, rounds go on past the budget, for at most
`overtime_s` more (counted from where they would have stopped), until the test says the candidates are
told apart (optismith.measure.ties).

Within a round a candidate runs a burst: untimed calls for `settle_s` first when it is fast (so what the
previous candidate left behind -- spinning thread pools, evicted caches -- is not charged to it, as it
would not be on a server that runs one model), then enough timed calls to take about `burst_s`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from optismith.measure.statistics import median_ci

Call = Callable[[], object]
Clock = Callable[[], float]

# A call slower than this leaves nothing measurable behind for the next one: no untimed call first.
SETTLE_BELOW_S = 0.02


@dataclass(frozen=True)
class RoundsPlan:
    budget_s: float  # wall time for all rounds together (warm-up excluded)
    min_rounds: int = 10
    max_rounds: int = 2000
    warmup_calls: int = 3
    # Bursts of ~50 ms after ~10 ms of untimed calls: with 5 ms bursts after one untimed call, a candidate
    # that followed ONNX Runtime (whose threads spin on after a run) measured 1.2-1.6x its time alone on
    # MobileNetV2 at 2 threads, and the ranking of two variants 15% apart flipped; with 50 ms bursts after
    # ~5 ms of untimed calls, both measured within 7% of their time alone, in the right order.
    burst_s: float = 0.05
    settle_s: float = 0.01  # untimed calls for about this long before each burst of a fast candidate
    max_burst: int = 100_000
    stability: float = 0.05  # the median's 95% CI must lie within this fraction of it
    seed: int = 0
    overtime_s: float = 0.0  # more rounds past the budget, for at most this long, until `settled`


@dataclass
class Timings:
    """Seconds per call, and each round's median (for drift: first half of the rounds vs second)."""

    calls: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)

    def summary(self, stability: float) -> dict[str, float | int | bool]:
        data = np.asarray(self.calls, dtype=np.float64) * 1e3
        p50 = float(np.median(data))
        low, high = median_ci(data)
        ci = max(p50 - low, high - p50) / p50 if p50 > 0 else math.inf
        half = len(self.round_medians) // 2
        drift = (float(np.median(self.round_medians[half:])) / float(np.median(self.round_medians[:half]))
                 if half else 1.0)
        return {"p50_ms": p50, "p90_ms": float(np.percentile(data, 90)), "mean_ms": float(data.mean()),
                "ci95_rel": ci, "calls": int(data.size), "rounds": len(self.round_medians),
                "drift": drift, "stable": ci <= stability}


def burst_size(latency_s: float, plan: RoundsPlan) -> int:
    if latency_s <= 0:
        return plan.max_burst
    return max(1, min(plan.max_burst, round(plan.burst_s / latency_s)))


Settled = Callable[[Mapping[str, Timings]], bool]


def interleaved_rounds(calls: Mapping[str, Call], plan: RoundsPlan, *, clock: Clock = time.perf_counter,
                       progress: Callable[[str], None] | None = None,
                       settled: Settled | None = None) -> dict[str, Timings]:
    """Warm every candidate up, then run rounds until the budget is spent (at least `min_rounds`); past
    the budget, while `settled` (asked after every round from then on) says no, for up to `overtime_s`."""
    names = list(calls)
    estimates: dict[str, float] = {}
    for name in names:
        started = clock()
        for _ in range(max(1, plan.warmup_calls)):
            calls[name]()
        estimates[name] = (clock() - started) / max(1, plan.warmup_calls)
    bursts = {name: burst_size(estimates[name], plan) for name in names}
    settle = {name: estimates[name] < SETTLE_BELOW_S for name in names}
    timings = {name: Timings() for name in names}
    rng = np.random.default_rng(plan.seed)
    started = clock()
    overtime_from: float | None = None
    rounds = 0
    while rounds < plan.max_rounds:
        for index in rng.permutation(len(names)):
            name = names[int(index)]
            call = calls[name]
            if settle[name]:
                settle_until = clock() + plan.settle_s
                call()
                while clock() < settle_until:
                    call()
            samples = []
            for _ in range(bursts[name]):
                begin = clock()
                call()
                samples.append(clock() - begin)
            timings[name].calls.extend(samples)
            timings[name].round_medians.append(float(np.median(samples)))
        rounds += 1
        now = clock()
        if rounds >= plan.min_rounds and now - started >= plan.budget_s:
            # Overtime counts from where the rounds would otherwise have stopped.
            overtime_from = now if overtime_from is None else overtime_from
            if settled is None or now - overtime_from >= plan.overtime_s or settled(timings):
                break
        if progress is not None and rounds % 10 == 0:
            progress(f"  round {rounds} ({clock() - started:.0f}s)")
    return timings
