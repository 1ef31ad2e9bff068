"""The final: each variant's paired rounds run at a different time, and on a shared host a neighbour's load
comes and goes between them, so two variants within noise of each other can swap places from run to run
(measured: the stage ranked onnx-int8 1.35x ahead of tflite-int8 on MobileNetV2 at batch 1, where
interleaved rounds put tflite-int8 1.6x ahead). At each batch size the `benchmark.finalists` fastest
variants are therefore measured once more in the same rounds (optismith.measure.interleave), with the
baseline, each at its best thread count, and their results at that batch size are replaced by the final's.

While the fastest finalist's confidence interval (over per-round medians, optismith.measure.ties) overlaps
another's, the final runs more rounds, for at most `benchmark.tieBudget`; what it ends with (each
finalist's interval, the contenders still within noise of the fastest, the extra rounds) is recorded,
and the select stage breaks a remaining tie by a secondary objective.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from optismith.measure.interleave import RoundsPlan, Timings, interleaved_rounds
from optismith.measure.paired import PairedTimes
from optismith.measure.statistics import is_stable
from optismith.measure.ties import Interval, contenders, round_interval
from optismith.results import ConfigResult, VariantBenchmark, VariantRecord
from optismith.runtimes import Runtime, Session
from optismith.stages.benchmark.candidate import Call, CandidateBench
from optismith.stages.benchmark.sweep import config_result, with_best

# A variant is a finalist when its paired speedup is within this factor of the best one's: paired rounds
# of the same int8 model measured up to 1.6x apart on a shared host.
FINALIST_MARGIN = 2.0


@dataclass(frozen=True)
class Runnable:
    """A measured variant and how to load it again."""

    record: VariantRecord
    runtime: type[Runtime]
    options: dict[str, Any]


def finalists(results: list[VariantBenchmark], batch: int, limit: int,
              margin: float = FINALIST_MARGIN) -> list[VariantBenchmark]:
    """The fastest measured variants at `batch` by paired speedup, best first: at most `limit`, only those
    within `margin` of the best, and none at all unless at least two qualify."""
    key = str(batch)
    ranked = sorted((r for r in results if r.status == "built" and key in r.best_by_batch
                     and r.best_by_batch[key].speedup > 0),
                    key=lambda r: -r.best_by_batch[key].speedup)
    if not ranked:
        return []
    best = ranked[0].best_by_batch[key].speedup
    chosen = [r for r in ranked[:limit] if r.best_by_batch[key].speedup * margin >= best]
    return chosen if len(chosen) >= 2 else []


def final_config(config: ConfigResult, variant_s: np.ndarray, baseline_s: np.ndarray, rounds: int,
                 stability: float) -> ConfigResult:
    """`config` (same batch, threads and server numbers) with the latencies and speedup of the final."""
    times = PairedTimes(variant_s, baseline_s, is_stable(variant_s, stability))
    return config_result(config.batch_size, config.threads, times).model_copy(update={
        "rounds": rounds, "server_p99_ms": config.server_p99_ms, "server_qps": config.server_qps,
        "runtime_settings": config.runtime_settings})


def intervals_of(timings: Mapping[str, Timings], names: list[str]) -> dict[str, Interval]:
    return {name: round_interval(timings[name].round_medians) for name in names}


def run_finals(bench: CandidateBench, results: list[VariantBenchmark], baseline_result: VariantBenchmark,
               runnable: dict[str, Runnable]) -> tuple[list[VariantBenchmark], dict[str, Any]]:
    """A final at every batch size; returns the results with the finalists' configs at that batch
    replaced, and what each final measured, by batch size."""
    summaries: dict[str, Any] = {}
    for batch in bench.plan.batch_sizes:
        try:
            results, summary = _final_at(bench, batch, results, baseline_result, runnable)
        except Exception as error:  # the paired results stand; a final only refines them
            summary = {"skipped": f"{type(error).__name__}: {error}"[:2000]}
            bench.ctx.progress(f"final at batch {batch} skipped: {summary['skipped']}")
        if summary:
            summaries[str(batch)] = summary
    return results, summaries


def _final_at(bench: CandidateBench, batch: int, results: list[VariantBenchmark], baseline_result: VariantBenchmark,
              runnable: dict[str, Runnable]) -> tuple[list[VariantBenchmark], dict[str, Any]]:
    key = str(batch)
    chosen = finalists(results, batch, bench.plan.finalists)
    if not chosen or key not in baseline_result.best_by_batch:
        return results, {}
    baseline_name = bench.baseline.record.name
    baseline_threads = baseline_result.best_by_batch[key].threads
    calls: dict[str, Call] = {baseline_name: bench.feeds.call(bench.baseline.session(baseline_threads), batch)}
    sessions: list[Session] = []
    policy = bench.plan.policy
    try:
        for result in chosen:
            entry = runnable[result.variant]
            session = entry.runtime.load(bench.ctx.fetch(entry.record.artifact or ""),
                                         threads=result.best_by_batch[key].threads, options=entry.options)
            sessions.append(session)
            calls[result.variant] = bench.feeds.call(session, batch)
        plan = RoundsPlan(budget_s=policy.budget_s * len(chosen), min_rounds=policy.min_rounds,
                          warmup_calls=max(1, policy.warmup), stability=policy.stability,
                          overtime_s=bench.plan.tie_budget_s)
        bench.ctx.progress(f"final at batch {batch}: {', '.join(r.variant for r in chosen)} and the "
                           f"baseline, interleaved, {plan.budget_s:.0f}s (up to {plan.overtime_s:g}s more "
                           "while the fastest are within noise)")
        # The baseline is a candidate for selection too: a variant within noise of it is no faster.
        names = [r.variant for r in chosen] + [baseline_name]
        rounds_in_budget: list[int] = []

        def told_apart(so_far: Mapping[str, Timings]) -> bool:
            if not rounds_in_budget:
                rounds_in_budget.append(len(so_far[baseline_name].round_medians))
            return len(contenders(intervals_of(so_far, names))) <= 1

        timings = interleaved_rounds(calls, plan, settled=told_apart)
    finally:
        for session in sessions:
            session.close()
        gc.collect()
    baseline_s = np.asarray(timings[baseline_name].calls)
    updated: dict[str, VariantBenchmark] = {}
    for result in chosen:
        timing = timings[result.variant]
        variant_s = np.asarray(timing.calls)
        config = final_config(result.best_by_batch[key], variant_s, baseline_s, len(timing.round_medians),
                              policy.stability)
        best = {**result.best_by_batch, key: config}
        updated[result.variant] = result.model_copy(update={"best_by_batch": best,
                                                            "configs": with_best(result.configs, best)})
        if batch == bench.plan.selection_batch:
            bench.save_raw(result.variant, batch, variant_s)
        bench.progress(f"{result.variant} (final)", config)
    intervals = intervals_of(timings, [r.variant for r in chosen] + [baseline_name])
    tied = contenders(intervals)
    rounds = len(timings[baseline_name].round_medians)
    extra_rounds = rounds - rounds_in_budget[0] if rounds_in_budget else 0
    if len(tied) > 1:
        bench.ctx.progress(f"final at batch {batch}: {', '.join(tied)} within noise of each other after "
                           f"{extra_rounds} extra round(s): a tie")
    summary = {
        "batch_size": batch, "rounds": rounds, "extra_rounds": extra_rounds,
        "tie_budget_s": bench.plan.tie_budget_s, "contenders": tied, "tie": len(tied) > 1,
        "baseline_threads": baseline_threads,
        "baseline": {"variant": baseline_name, "round_p50_ms": intervals[baseline_name].p50_ms,
                     "ci95_low_ms": intervals[baseline_name].low_ms,
                     "ci95_high_ms": intervals[baseline_name].high_ms},
        "finalists": {r.variant: {"threads": r.best_by_batch[key].threads,
                                  "before_p50_ms": r.best_by_batch[key].latency.p50_ms,
                                  "before_speedup": r.best_by_batch[key].speedup,
                                  "p50_ms": updated[r.variant].best_by_batch[key].latency.p50_ms,
                                  "speedup": updated[r.variant].best_by_batch[key].speedup,
                                  "round_p50_ms": intervals[r.variant].p50_ms,
                                  "ci95_low_ms": intervals[r.variant].low_ms,
                                  "ci95_high_ms": intervals[r.variant].high_ms}
                      for r in chosen},
    }
    return [updated.get(r.variant, r) for r in results], summary
