"""The select stage: the best variant (over all targets) by the objective, among those that pass the gates.

Every (variant, target) becomes a Candidate with the reasons it failed, and the Pareto front over
(p50 latency, size, accuracy drop) is marked so a user can see what else was on the table.

For latencyP50, a winner whose final interval (the benchmark's final, optismith.stages.benchmark.final)
overlaps other passing finalists' is tied with them: on a shared host the order among them is noise, so
the winner is the one with the smaller artifact, then the lower p50, and the selection says so.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optismith.errors import StageError
from optismith.measure.ties import Interval
from optismith.results import Accuracy, Candidate, ConfigResult, Finalist, Selection, StageRecord, VariantBenchmark
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.spec import ModelOptimizationSpec, Objective, percent, seconds, size_bytes

_EPSILON = 1e-12


@dataclass(frozen=True)
class Gates:
    max_accuracy_drop: float  # fraction
    max_latency_ms: float | None
    max_size_bytes: int | None
    labels: dict[str, str]  # gate -> the constraint as the user wrote it

    @classmethod
    def from_spec(cls, spec: ModelOptimizationSpec) -> Gates:
        c = spec.selection.constraints
        return cls(
            max_accuracy_drop=percent(c.max_accuracy_drop),
            max_latency_ms=seconds(c.max_latency) * 1e3 if c.max_latency else None,
            max_size_bytes=size_bytes(c.max_size) if c.max_size else None,
            labels={"accuracy": f"maxAccuracyDrop {c.max_accuracy_drop}", "latency": f"maxLatency {c.max_latency}",
                    "size": f"maxSize {c.max_size}"},
        )


def pareto_front(points: Sequence[tuple[float, ...] | None]) -> list[bool]:
    """For each point (all coordinates minimized), whether no other point is at least as good in every
    coordinate and better in one. Points that are None take no part."""
    front = []
    for i, point in enumerate(points):
        if point is None:
            front.append(False)
            continue
        dominated = any(
            other is not None and j != i
            and all(o <= p for o, p in zip(other, point, strict=True))
            and any(o < p for o, p in zip(other, point, strict=True))
            for j, other in enumerate(points)
        )
        front.append(not dominated)
    return front


def objective_value(objective: Objective, config: ConfigResult | None, size: int | None,
                    anchor_p50_ms: float | None = None) -> float | None:
    """For latencyP50 with an anchor, the paired estimate anchor / speedup: on a shared, drifting host the
    speedup (measured against the baseline in the same rounds) ranks variants reliably where absolute
    p50s measured minutes apart do not."""
    if objective == "size":
        return float(size) if size is not None else None
    if config is None:
        return None
    if objective == "latencyP50":
        if anchor_p50_ms is not None and config.speedup > 0:
            return anchor_p50_ms / config.speedup
        return config.latency.p50_ms
    if objective == "latencyP99":
        return config.latency.p99_ms
    return config.throughput_per_s


def _fmt_size(value: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def evaluate_candidate(bench: VariantBenchmark, accuracy: Accuracy | None, size: int | None, *,
                       objective: Objective, batch: int, gates: Gates,
                       anchor_p50_ms: float | None = None) -> tuple[Candidate, list[str]]:
    """The candidate and the gates it failed ('accuracy', 'latency', 'size', 'measurement')."""
    config = bench.best_by_batch.get(str(batch))
    reasons: list[str] = []
    failed: list[str] = []

    def fail(gate: str, reason: str) -> None:
        failed.append(gate)
        reasons.append(reason)

    if bench.status != "built":
        fail("measurement", f"not measured on {bench.target} ({bench.status}): {bench.reason}".rstrip(": "))
    elif config is None:
        fail("measurement", f"not measured at batch size {batch}")
    drop = accuracy.drop if accuracy is not None else None
    if drop is None:
        fail("accuracy", f"no accuracy measurement on {bench.target}: cannot pass the accuracy gate")
    elif drop > gates.max_accuracy_drop + _EPSILON:
        fail("accuracy", f"accuracy drop {drop * 100:.2f}% exceeds {gates.labels['accuracy']}")
    if gates.max_latency_ms is not None and config is not None and \
            config.latency.p99_ms > gates.max_latency_ms + _EPSILON:
        fail("latency", f"p99 latency {config.latency.p99_ms:.3f} ms exceeds {gates.labels['latency']}")
    if gates.max_size_bytes is not None:
        if size is None:
            fail("size", f"size unknown: cannot pass {gates.labels['size']}")
        elif size > gates.max_size_bytes:
            fail("size", f"size {_fmt_size(size)} exceeds {gates.labels['size']}")
    value = objective_value(objective, config, size, anchor_p50_ms)
    if value is None and "measurement" not in failed:
        fail("measurement", f"no value for the objective {objective}")
    candidate = Candidate(
        variant=bench.variant, target=bench.target, objective_value=value,
        latency_p50_ms=config.latency.p50_ms if config else None,
        latency_p99_ms=config.latency.p99_ms if config else None,
        throughput_per_s=config.throughput_per_s if config else None,
        size_bytes=size, accuracy_drop=drop, speedup=config.speedup if config else None,
        passed=not reasons, reasons=reasons,
    )
    return candidate, failed


def _rank(objective: Objective, candidate: Candidate) -> tuple[float, float, float, str, str]:
    value = candidate.objective_value if candidate.objective_value is not None else float("inf")
    return (
        -value if objective == "throughput" else value,
        candidate.latency_p50_ms if candidate.latency_p50_ms is not None else float("inf"),
        float(candidate.size_bytes) if candidate.size_bytes is not None else float("inf"),
        candidate.variant, candidate.target,
    )


_GATE_TEXT = {"accuracy": "fail the accuracy gate", "latency": "are too slow", "size": "are too large",
              "measurement": "have no usable measurement"}
_GATE_FIX = {"accuracy": "relax selection.constraints.maxAccuracyDrop or provide better calibration data",
             "latency": "relax selection.constraints.maxLatency or use a faster target",
             "size": "relax selection.constraints.maxSize",
             "measurement": "check the benchmark and evaluate records for why variants were not measured"}


def _baseline_anchors(benchmarks: Sequence[VariantBenchmark], batch: int) -> dict[str, float]:
    """Per target, the median of the baseline p50s measured alongside each variant at this batch size."""
    samples: dict[str, list[float]] = {}
    for bench in benchmarks:
        config = bench.best_by_batch.get(str(batch))
        if config is not None and config.baseline_latency.p50_ms > 0:
            samples.setdefault(bench.target, []).append(config.baseline_latency.p50_ms)
    return {target: float(statistics.median(values)) for target, values in samples.items()}


@dataclass(frozen=True)
class TieOutcome:
    winner: Candidate
    finalists: list[Finalist]
    extra_rounds: int = 0
    tied: tuple[str, ...] = ()
    tie_break: str | None = None


def finalists_of(final: Mapping[str, Any], target: str, passed: set[str]) -> list[Finalist]:
    """The finalists a benchmark record's final (at one batch size) measured, with their intervals; the
    baseline, which ran in the same rounds, last."""
    entries = dict(final.get("finalists", {}))
    if "baseline" in final:
        entries[final["baseline"]["variant"]] = final["baseline"]
    return [Finalist(variant=name, target=target, p50_ms=entry["round_p50_ms"], ci95_low_ms=entry["ci95_low_ms"],
                     ci95_high_ms=entry["ci95_high_ms"], passed=name in passed)
            for name, entry in entries.items() if "ci95_low_ms" in entry]


def break_tie(winner: Candidate, passed: Sequence[Candidate], final: Mapping[str, Any] | None) -> TieOutcome:
    """The winner, or, when passing finalists are within noise of it, the smallest of them (then the lowest
    p50 in the final), with how it was picked."""
    if not final:
        return TieOutcome(winner, [])
    names = {c.variant: c for c in passed if c.target == winner.target}
    finalists = finalists_of(final, winner.target, set(names))
    extra = int(final.get("extra_rounds", 0))
    intervals = {f.variant: Interval(f.p50_ms, f.ci95_low_ms, f.ci95_high_ms) for f in finalists if f.passed}
    if winner.variant not in intervals:
        return TieOutcome(winner, finalists, extra)
    tied = sorted((name for name, interval in intervals.items() if interval.overlaps(intervals[winner.variant])),
                  key=lambda name: (intervals[name].p50_ms, name))
    if len(tied) < 2:
        return TieOutcome(winner, finalists, extra)

    def size(name: str) -> float:
        value = names[name].size_bytes
        return float(value) if value is not None else float("inf")

    chosen = min(tied, key=lambda name: (size(name), intervals[name].p50_ms, name))
    smallest_other = min(size(name) for name in tied if name != chosen)
    if size(chosen) < smallest_other:
        how = f"smaller artifact ({_fmt_size(int(size(chosen)))} vs {_fmt_size(int(smallest_other))})"
    else:
        how = (f"lower p50 in the final ({intervals[chosen].p50_ms:.3f} ms; the tied artifacts are the same "
               "size)")
    return TieOutcome(names[chosen], finalists, extra, tuple(tied), how)


def select(benchmarks: Sequence[VariantBenchmark], accuracy: Sequence[Accuracy], sizes: dict[str, int | None],
           *, objective: Objective, batch: int, gates: Gates,
           finals: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Selection, list[str]]:
    """The selection, and the (variant@target) names whose winning config was unstable. `finals`: per
    target, the benchmark's final at `batch` (its record's payload["final"][batch]), for ties."""
    by_key = {(a.variant, a.target): a for a in accuracy}
    candidates: list[Candidate] = []
    failed_gates: Counter[str] = Counter()
    unstable: list[str] = []
    anchors = _baseline_anchors(benchmarks, batch)
    for bench in benchmarks:
        candidate, failed = evaluate_candidate(bench, by_key.get((bench.variant, bench.target)),
                                               sizes.get(bench.variant), objective=objective, batch=batch,
                                               gates=gates, anchor_p50_ms=anchors.get(bench.target))
        candidates.append(candidate)
        failed_gates.update(set(failed))
        config = bench.best_by_batch.get(str(batch))
        if config is not None and not config.stable:
            unstable.append(f"{bench.variant}@{bench.target}")
    points = [
        (c.latency_p50_ms, float(c.size_bytes), c.accuracy_drop)
        if c.latency_p50_ms is not None and c.size_bytes is not None and c.accuracy_drop is not None else None
        for c in candidates
    ]
    candidates = [c.model_copy(update={"pareto": on_front})
                  for c, on_front in zip(candidates, pareto_front(points), strict=True)]
    candidates.sort(key=lambda c: (not c.passed, _rank(objective, c)))
    passed = [c for c in candidates if c.passed]
    if not passed:
        summary = ", ".join(f"{count} {_GATE_TEXT[gate]}" for gate, count in failed_gates.most_common())
        fixes = "; ".join(_GATE_FIX[gate] for gate, _ in failed_gates.most_common())
        message = (f"no variant passed the gates ({len(candidates)} candidate(s): {summary or 'none measured'}). "
                   f"Fix: {fixes or 'run the benchmark and evaluate stages'}")
        return Selection(objective=objective, batch_size=batch, winner=None, winner_target=None,
                         outcome="no-variant-passed", message=message, candidates=candidates), unstable
    final = (finals or {}).get(passed[0].target) if objective == "latencyP50" else None
    outcome = break_tie(passed[0], passed, final)
    winner = outcome.winner
    message = _winner_message(winner, objective, batch, len(passed), gates, tied=bool(outcome.tie_break))
    if outcome.tie_break:
        intervals = {f.variant: f for f in outcome.finalists}
        listed = ", ".join(f"{name} {intervals[name].p50_ms:.3f} ms [{intervals[name].ci95_low_ms:.3f}, "
                           f"{intervals[name].ci95_high_ms:.3f}]" for name in outcome.tied)
        message += (f" Tie: the final's 95% intervals overlap ({listed}) after {outcome.extra_rounds} extra "
                    f"round(s); picked by the {outcome.tie_break}.")
    if f"{winner.variant}@{winner.target}" in unstable:
        message += " Its latency did not stabilize within the time budget: treat the ranking with care."
    return Selection(objective=objective, batch_size=batch, winner=winner.variant, winner_target=winner.target,
                     outcome="selected", message=message, candidates=candidates, finalists=outcome.finalists,
                     extra_rounds=outcome.extra_rounds, tie=bool(outcome.tie_break), tied=list(outcome.tied),
                     tie_break=outcome.tie_break), unstable


def _winner_message(winner: Candidate, objective: Objective, batch: int, passing: int, gates: Gates,
                    tied: bool = False) -> str:
    best = {"latencyP50": "lowest p50 latency", "latencyP99": "lowest p99 latency",
            "throughput": "highest throughput", "size": "smallest size"}[objective]
    parts = []
    if winner.latency_p50_ms is not None:
        parts.append(f"p50 {winner.latency_p50_ms:.3f} ms at batch {batch}")
    if winner.speedup is not None:
        parts.append(f"{winner.speedup:.2f}x the baseline")
    if winner.throughput_per_s is not None:
        parts.append(f"{winner.throughput_per_s:.0f} samples/s")
    if winner.accuracy_drop is not None:
        parts.append(f"accuracy drop {winner.accuracy_drop * 100:.2f}% (limit {gates.max_accuracy_drop * 100:g}%)")
    if winner.size_bytes is not None:
        parts.append(_fmt_size(winner.size_bytes))
    claim = f"is tied (within noise) for the {best}" if tied else f"has the {best}"
    return (f"{winner.variant} on {winner.target} {claim} of {passing} variant(s) that passed the "
            f"gates: {', '.join(parts)}.")


class SelectStage(Stage):
    name = "select"
    requires = ("benchmark", "evaluate")

    def run(self, ctx: StageContext) -> StageRecord:
        spec = ctx.spec
        benchmarks: list[VariantBenchmark] = []
        accuracy: list[Accuracy] = []
        finals: dict[str, Any] = {}
        missing: list[str] = []
        for target in spec.targets:
            if not ctx.has_record("benchmark", target.name):
                missing.append(target.name)
                continue
            record = ctx.record("benchmark", target.name)
            if record.status != "succeeded":
                missing.append(target.name)
                continue
            benchmarks.extend(record.benchmarks)
            final = record.payload.get("final", {}).get(str(spec.selection.batch_size))
            if final:
                finals[target.name] = final
            if ctx.has_record("evaluate", target.name):
                evaluated = ctx.record("evaluate", target.name)
                if evaluated.status == "succeeded":
                    accuracy.extend(evaluated.accuracy)
        if not benchmarks:
            raise StageError("no target has a successful benchmark record", where=ctx.store.uri,
                             fix="run the benchmark stage for at least one target")
        sizes = {v.name: v.size_bytes for v in ctx.variants()}
        selection, unstable = select(benchmarks, accuracy, sizes, objective=spec.selection.objective,
                                     batch=spec.selection.batch_size, gates=Gates.from_spec(spec), finals=finals)
        ctx.progress(selection.message)
        message = selection.message
        if missing:
            message += f" Targets without benchmark results: {', '.join(missing)}."
        return new_record(ctx, "select", message=message, payload={
            "selection": selection.model_dump(mode="json"),
            "unstable": unstable,
            "targets_without_results": missing,
        })
