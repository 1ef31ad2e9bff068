"""The benchmark stage: every runnable variant against the baseline (tf-savedmodel), per target.

For each variant, thread count and batch size the variant and the baseline run in paired rounds in this
process, alternating which goes first, until the variant's median latency is known to within
`benchmark.stability` (95% distribution-free CI) or `benchmark.timeBudget` is spent (then the result is
flagged unstable). The speedup comes from those same rounds. The server scenario (Poisson arrivals, one
worker) runs once per variant: at the selection batch size with that batch's best thread count.

Memory: `peak_rss_bytes` is the largest increase of the resident set size (from /proc/self/statm,
sampled after loading, after the first inference and after every configuration) over what the process
held just before the variant was loaded. ru_maxrss cannot be used: it is a process-lifetime maximum.
Allocators may keep memory a released variant used, so a later variant can reuse it and show less.

Cold start is load + first inference in a process that has already imported the runtime's library.

The final: each variant's paired rounds run at a different time, and on a shared host a neighbour's load
comes and goes between them, so two variants within noise of each other can swap places from run to run
(measured: the stage ranked onnx-int8 1.35x ahead of tflite-int8 on MobileNetV2 at batch 1, where
interleaved rounds put tflite-int8 1.6x ahead). At each batch size the `benchmark.finalists` fastest
variants are therefore measured once more in the same rounds, with the baseline, each at its best thread
count, and their results at that batch size are replaced by the final's.
"""

from __future__ import annotations

import gc
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optismith.errors import StageError
from optismith.results import ConfigResult, StageRecord, VariantBenchmark, VariantRecord
from optismith.runtimes import Runtime, Session
from optismith.spec import BASELINE_VARIANT, ModelOptimizationSpec, percent, seconds
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.eligibility import resolve
from optismith.stages.environment import affinity_count, cpu_quota, current_rss_bytes, describe_environment
from optismith.stages.feeds import align_inputs, batch_of, load_samples, synthetic_inputs
from optismith.stages.interleave import RoundsPlan, interleaved_rounds
from optismith.stages.measure import is_stable, latency_stats
from optismith.stages.rounds import PairedTimes, RoundsPolicy, paired_rounds, serve_poisson

SYNTHETIC_SAMPLES = 64
# A variant is a finalist when its paired speedup is within this factor of the best one's: paired rounds
# of the same int8 model measured up to 1.6x apart on a shared host.
FINALIST_MARGIN = 2.0


def raw_latency_key(target: str, variant: str, batch: int) -> str:
    """Side file with the per-round latencies (ms, float64) of a variant's best config at a batch size."""
    return f"benchmarks/{target}/{variant}-b{batch}.npy"


def default_threads(cores: int | None = None) -> list[int]:
    """1..cores, as powers of two plus `cores` itself: a full sweep on a 64-core node would take
    64 times as long and thread scaling is smooth enough between those points."""
    if cores is None:
        quota = cpu_quota()
        cores = affinity_count()
        if quota is not None:
            cores = max(1, min(cores, math.ceil(quota)))
    counts = {cores}
    power = 1
    while power < cores:
        counts.add(power)
        power *= 2
    return sorted(counts)


@dataclass(frozen=True)
class BenchmarkPlan:
    batch_sizes: list[int]
    threads: list[int]
    policy: RoundsPolicy
    server: bool
    server_qps: float | None
    server_duration_s: float
    selection_batch: int
    finalists: int = 0

    @classmethod
    def from_spec(cls, spec: ModelOptimizationSpec) -> BenchmarkPlan:
        bench = spec.benchmark
        return cls(
            batch_sizes=list(bench.batch_sizes),
            threads=list(bench.threads) or default_threads(),
            policy=RoundsPolicy(warmup=bench.warmup_runs, min_rounds=bench.min_rounds,
                                budget_s=seconds(bench.time_budget), stability=percent(bench.stability)),
            server="server" in bench.scenarios,
            server_qps=float(bench.server_qps) if bench.server_qps else None,
            server_duration_s=seconds(bench.server_duration),
            selection_batch=spec.selection.batch_size,
            finalists=bench.finalists,
        )


def config_result(batch: int, threads: int, times: PairedTimes) -> ConfigResult:
    variant = latency_stats(times.variant_s)
    baseline = latency_stats(times.baseline_s if times.baseline_s is not None else times.variant_s)
    return ConfigResult(
        batch_size=batch, threads=threads, latency=variant, baseline_latency=baseline,
        speedup=baseline.p50_ms / variant.p50_ms if variant.p50_ms > 0 else 0.0,
        throughput_per_s=batch / (variant.mean_ms / 1e3) if variant.mean_ms > 0 else 0.0,
        stable=times.stable, rounds=times.rounds,
    )


def default_server_qps(config: ConfigResult) -> float:
    """Requests per second at half the single-stream capacity measured for this config: a loaded but
    not saturated server, where queueing shows up in the tail without growing without bound."""
    return 0.5 * 1e3 / config.latency.mean_ms


def best_by_batch(configs: list[ConfigResult]) -> dict[str, ConfigResult]:
    """For each batch size, the thread count with the lowest median latency."""
    best: dict[str, ConfigResult] = {}
    for config in configs:
        key = str(config.batch_size)
        if key not in best or config.latency.p50_ms < best[key].latency.p50_ms:
            best[key] = config
    return best


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
        "rounds": rounds, "server_p99_ms": config.server_p99_ms, "server_qps": config.server_qps})


@dataclass
class _Inputs:
    """Source arrays and the per-(session inputs, batch) feeds cut from them."""

    arrays: dict[str, np.ndarray] | None
    cache: dict[tuple[object, int], list[np.ndarray]] = field(default_factory=dict)

    def feeds(self, session: Session, batch: int) -> list[np.ndarray]:
        signature = tuple((spec.name, spec.dtype) for spec in session.inputs)
        key = (signature, batch)
        if key not in self.cache:
            arrays = self.arrays if self.arrays is not None else synthetic_inputs(session.inputs,
                                                                                  SYNTHETIC_SAMPLES)
            self.cache[key] = batch_of(align_inputs(arrays, session.inputs), batch)
        return self.cache[key]


def _runner(session: Session, feeds: list[np.ndarray]) -> Callable[[], object]:
    return lambda: session.run(feeds)


def _with_best(configs: list[ConfigResult], best: dict[str, ConfigResult]) -> list[ConfigResult]:
    """The configs, with the best ones replaced by their copies that carry server-scenario numbers."""
    updated = {(c.batch_size, c.threads): c for c in best.values()}
    return [updated.get((c.batch_size, c.threads), c) for c in configs]


class _OneSession:
    """At most one session of a variant open at a time, so two thread counts never share memory."""

    def __init__(self, runtime: type[Runtime], path: Path) -> None:
        self.runtime = runtime
        self.path = path
        self.threads: int | None = None
        self.session: Session | None = None

    def get(self, threads: int) -> Session:
        if self.session is None or self.threads != threads:
            self.close()
            self.session = self.runtime.load(self.path, threads=threads)
            self.threads = threads
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self.threads = None
            gc.collect()


class _Bench:
    """Holds the baseline sessions (one per thread count) for the whole stage, and pools the baseline's
    latencies from every pairing so the baseline's own record comes from the same rounds."""

    def __init__(self, ctx: StageContext, plan: BenchmarkPlan, baseline: VariantRecord,
                 baseline_runtime: type[Runtime], inputs: _Inputs) -> None:
        self.ctx = ctx
        self.plan = plan
        self.target = ctx.target.name if ctx.target else "local"
        self.baseline = baseline
        self.baseline_runtime = baseline_runtime
        self.baseline_path = ctx.fetch(baseline.artifact or "")
        self.inputs = inputs
        self.baseline_sessions: dict[int, Session] = {}
        self.baseline_pool: dict[tuple[int, int], list[np.ndarray]] = {}
        self.baseline_cold_ms: float | None = None
        self.baseline_rss_before = current_rss_bytes()
        self.baseline_rss_peak = self.baseline_rss_before

    def prepare(self) -> None:
        """Load the baseline for every thread count up front: without it nothing can be compared."""
        for threads in self.plan.threads:
            try:
                self.baseline_session(threads)
            except Exception as error:
                raise StageError(
                    f"the baseline {self.baseline.name} does not run with {threads} threads: "
                    f"{type(error).__name__}: {error}"[:2000],
                    where=self.ctx.store.key_uri(self.baseline.artifact or ""),
                    fix="check that the source model runs on the inspect stage's sample inputs",
                ) from error

    def baseline_session(self, threads: int) -> Session:
        if threads not in self.baseline_sessions:
            started = time.perf_counter()
            session = self.baseline_runtime.load(self.baseline_path, threads=threads)
            session.run(self.inputs.feeds(session, self.plan.batch_sizes[0]))
            if self.baseline_cold_ms is None:
                self.baseline_cold_ms = (time.perf_counter() - started) * 1e3
            self.baseline_rss_peak = max(self.baseline_rss_peak, current_rss_bytes())
            self.baseline_sessions[threads] = session
        return self.baseline_sessions[threads]

    def close(self) -> None:
        for session in self.baseline_sessions.values():
            session.close()
        self.baseline_sessions.clear()
        gc.collect()

    def progress(self, name: str, config: ConfigResult) -> None:
        flag = "" if config.stable else " (unstable)"
        self.ctx.progress(
            f"{name} b{config.batch_size} t{config.threads}: p50 {config.latency.p50_ms:.3f} ms, "
            f"{config.speedup:.2f}x vs baseline, {config.rounds} rounds{flag}"
        )

    def save_raw(self, variant: str, batch: int, seconds_array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(seconds_array, dtype=np.float64) * 1e3)
        self.ctx.store.write_bytes(raw_latency_key(self.target, variant, batch), buffer.getvalue())

    def server_config(self, best: dict[str, ConfigResult]) -> ConfigResult | None:
        """The one config the server scenario runs on: the selection batch size at its best thread count.
        Its wall time is fixed (serverDuration) however fast the model is, so running it for every
        configuration would dominate the stage; the selection batch is the one that gets deployed."""
        if not self.plan.server:
            return None
        return best.get(str(self.plan.selection_batch))

    def server(self, session: Session, config: ConfigResult) -> ConfigResult:
        feeds = self.inputs.feeds(session, config.batch_size)
        qps = self.plan.server_qps or default_server_qps(config)
        run = serve_poisson(_runner(session, feeds), qps, self.plan.server_duration_s)
        if run.latencies_s.size == 0:
            return config
        return config.model_copy(update={
            "server_p99_ms": float(np.percentile(run.latencies_s, 99) * 1e3),
            "server_qps": run.achieved_qps,
        })

    # --- one variant ---

    def measure_variant(self, variant: VariantRecord, runtime: type[Runtime]) -> VariantBenchmark:
        path = self.ctx.fetch(variant.artifact or "")
        gc.collect()
        sessions = _OneSession(runtime, path)
        rss_before = current_rss_bytes()
        peak = rss_before
        cold_ms: float | None = None
        configs: list[ConfigResult] = []
        raw: dict[tuple[int, int], np.ndarray] = {}
        errors: list[str] = []
        try:
            for threads in self.plan.threads:
                started = time.perf_counter()
                try:
                    session = sessions.get(threads)
                except Exception as error:
                    errors.append(f"load with {threads} threads: {type(error).__name__}: {error}")
                    continue
                peak = max(peak, current_rss_bytes())
                baseline = self.baseline_session(threads)
                for batch in self.plan.batch_sizes:
                    try:
                        feeds = self.inputs.feeds(session, batch)
                        if cold_ms is None:
                            session.run(feeds)
                            cold_ms = (time.perf_counter() - started) * 1e3
                            peak = max(peak, current_rss_bytes())
                        times = paired_rounds(_runner(session, feeds),
                                              _runner(baseline, self.inputs.feeds(baseline, batch)),
                                              self.plan.policy)
                    except Exception as error:
                        errors.append(f"batch {batch}, {threads} threads: {type(error).__name__}: {error}")
                        continue
                    peak = max(peak, current_rss_bytes())
                    config = config_result(batch, threads, times)
                    configs.append(config)
                    raw[(batch, threads)] = times.variant_s
                    if times.baseline_s is not None:
                        self.baseline_pool.setdefault((batch, threads), []).append(times.baseline_s)
                    self.progress(variant.name, config)
            best = best_by_batch(configs)
            served = self.server_config(best)
            if served is not None:
                best[str(served.batch_size)] = self.server(sessions.get(served.threads), served)
                self.server_progress(variant.name, best[str(served.batch_size)])
        finally:
            sessions.close()
        self.save_selection_raw(variant.name, best, raw)
        return VariantBenchmark(
            variant=variant.name, target=self.target,
            status="built" if configs else "failed",
            reason="; ".join(errors)[:2000],
            cold_start_ms=cold_ms, peak_rss_bytes=max(0, peak - rss_before),
            configs=_with_best(configs, best), best_by_batch=best,
        )

    def server_progress(self, name: str, config: ConfigResult) -> None:
        self.ctx.progress(f"{name} b{config.batch_size} t{config.threads} server: p99 "
                          f"{config.server_p99_ms or 0.0:.3f} ms at {config.server_qps or 0.0:.0f} requests/s")

    def save_selection_raw(self, variant: str, best: dict[str, ConfigResult],
                           raw: dict[tuple[int, int], np.ndarray]) -> None:
        selection = best.get(str(self.plan.selection_batch))
        if selection is not None:
            self.save_raw(variant, selection.batch_size, raw[(selection.batch_size, selection.threads)])

    # --- the final ---

    def final(self, results: list[VariantBenchmark], baseline_result: VariantBenchmark,
              variants: dict[str, tuple[VariantRecord, type[Runtime]]],
              ) -> tuple[list[VariantBenchmark], dict[str, Any]]:
        """A final at every batch size (see the module's docstring); returns the results with the
        finalists' configs at that batch replaced, and what each final measured, by batch size."""
        summaries: dict[str, Any] = {}
        for batch in self.plan.batch_sizes:
            try:
                results, summary = self._final_at(batch, results, baseline_result, variants)
            except Exception as error:  # the paired results stand; a final only refines them
                summary = {"skipped": f"{type(error).__name__}: {error}"[:2000]}
                self.ctx.progress(f"final at batch {batch} skipped: {summary['skipped']}")
            if summary:
                summaries[str(batch)] = summary
        return results, summaries

    def _final_at(self, batch: int, results: list[VariantBenchmark], baseline_result: VariantBenchmark,
                  variants: dict[str, tuple[VariantRecord, type[Runtime]]],
                  ) -> tuple[list[VariantBenchmark], dict[str, Any]]:
        key = str(batch)
        chosen = finalists(results, batch, self.plan.finalists)
        if not chosen or key not in baseline_result.best_by_batch:
            return results, {}
        baseline_threads = baseline_result.best_by_batch[key].threads
        baseline = self.baseline_session(baseline_threads)
        calls: dict[str, Callable[[], object]] = {
            self.baseline.name: _runner(baseline, self.inputs.feeds(baseline, batch))}
        sessions: list[Session] = []
        try:
            for result in chosen:
                record, runtime = variants[result.variant]
                session = runtime.load(self.ctx.fetch(record.artifact or ""),
                                       threads=result.best_by_batch[key].threads)
                sessions.append(session)
                calls[result.variant] = _runner(session, self.inputs.feeds(session, batch))
            policy = self.plan.policy
            plan = RoundsPlan(budget_s=policy.budget_s * len(chosen), min_rounds=policy.min_rounds,
                              warmup_calls=max(1, policy.warmup), stability=policy.stability)
            self.ctx.progress(f"final at batch {batch}: {', '.join(r.variant for r in chosen)} and the "
                              f"baseline, interleaved, {plan.budget_s:.0f}s")
            timings = interleaved_rounds(calls, plan)
        finally:
            for session in sessions:
                session.close()
            gc.collect()
        baseline_s = np.asarray(timings[self.baseline.name].calls)
        updated: dict[str, VariantBenchmark] = {}
        for result in chosen:
            timing = timings[result.variant]
            variant_s = np.asarray(timing.calls)
            config = final_config(result.best_by_batch[key], variant_s, baseline_s,
                                  len(timing.round_medians), policy.stability)
            best = {**result.best_by_batch, key: config}
            updated[result.variant] = result.model_copy(update={
                "best_by_batch": best, "configs": _with_best(result.configs, best)})
            if batch == self.plan.selection_batch:
                self.save_raw(result.variant, batch, variant_s)
            self.progress(f"{result.variant} (final)", config)
        summary = {
            "batch_size": batch, "rounds": len(timings[self.baseline.name].round_medians),
            "baseline_threads": baseline_threads,
            "finalists": {r.variant: {"threads": r.best_by_batch[key].threads,
                                      "before_p50_ms": r.best_by_batch[key].latency.p50_ms,
                                      "before_speedup": r.best_by_batch[key].speedup,
                                      "p50_ms": updated[r.variant].best_by_batch[key].latency.p50_ms,
                                      "speedup": updated[r.variant].best_by_batch[key].speedup}
                          for r in chosen},
        }
        return [updated.get(r.variant, r) for r in results], summary

    # --- the baseline itself ---

    def baseline_benchmark(self) -> VariantBenchmark:
        configs: list[ConfigResult] = []
        raw: dict[tuple[int, int], np.ndarray] = {}
        errors: list[str] = []
        for threads in self.plan.threads:
            try:
                session = self.baseline_session(threads)
            except Exception as error:
                errors.append(f"load with {threads} threads: {type(error).__name__}: {error}")
                continue
            for batch in self.plan.batch_sizes:
                pooled = self.baseline_pool.get((batch, threads))
                try:
                    if pooled:
                        samples = np.concatenate(pooled)
                        times = PairedTimes(samples, samples, is_stable(samples, self.plan.policy.stability))
                    else:
                        # No variant was paired with it: measure the baseline on its own.
                        times = paired_rounds(_runner(session, self.inputs.feeds(session, batch)), None,
                                              self.plan.policy)
                except Exception as error:
                    errors.append(f"batch {batch}, {threads} threads: {type(error).__name__}: {error}")
                    continue
                config = config_result(batch, threads, times).model_copy(update={"speedup": 1.0})
                configs.append(config)
                raw[(batch, threads)] = times.variant_s
                self.progress(self.baseline.name, config)
        best = best_by_batch(configs)
        served = self.server_config(best)
        if served is not None:
            best[str(served.batch_size)] = self.server(self.baseline_session(served.threads), served)
            self.server_progress(self.baseline.name, best[str(served.batch_size)])
        self.save_selection_raw(self.baseline.name, best, raw)
        return VariantBenchmark(
            variant=self.baseline.name, target=self.target, status="built" if configs else "failed",
            reason="; ".join(errors)[:2000], cold_start_ms=self.baseline_cold_ms,
            peak_rss_bytes=max(0, self.baseline_rss_peak - self.baseline_rss_before),
            configs=_with_best(configs, best), best_by_batch=best,
        )


@register_stage
class BenchmarkStage(Stage):
    name = "benchmark"
    requires = ("inspect",)
    per_target = True
    description = "Paired-round latency, throughput, server-scenario and memory of every variant."

    def run(self, ctx: StageContext) -> StageRecord:
        target = ctx.target
        variants = ctx.variants()
        baseline = next((v for v in variants if v.name == BASELINE_VARIANT), None)
        if baseline is None:
            raise StageError(f"the baseline {BASELINE_VARIANT} was not recorded by any build stage",
                             where=ctx.store.uri, fix="run the inspect stage first")
        baseline_runtime, why = resolve(baseline, target)
        if baseline_runtime is None:
            raise StageError(f"the baseline {BASELINE_VARIANT} cannot run here: {why}",
                             where=ctx.store.uri, fix="every speedup is measured against the baseline: "
                             "run this target with TensorFlow installed")
        plan = BenchmarkPlan.from_spec(ctx.spec)
        bench = _Bench(ctx, plan, baseline, baseline_runtime, _Inputs(load_samples(ctx)))
        versions = dict(baseline_runtime.versions())
        results: list[VariantBenchmark] = []
        runnable: dict[str, tuple[VariantRecord, type[Runtime]]] = {}
        final: dict[str, Any] = {}
        target_name = target.name if target else "local"
        try:
            bench.prepare()
            for variant in variants:
                if variant.name == BASELINE_VARIANT or variant.status != "built":
                    continue
                runtime, why = resolve(variant, target)
                if runtime is None:
                    results.append(VariantBenchmark(variant=variant.name, target=target_name,
                                                    status="skipped", reason=why))
                    ctx.progress(f"{variant.name}: {why}")
                    continue
                versions.update(runtime.versions())
                runnable[variant.name] = (variant, runtime)
                try:
                    results.append(bench.measure_variant(variant, runtime))
                except Exception as error:
                    results.append(VariantBenchmark(variant=variant.name, target=target_name, status="failed",
                                                    reason=f"{type(error).__name__}: {error}"[:2000]))
            baseline_result = bench.baseline_benchmark()
            if baseline_result.status == "built":
                results, final = bench.final(results, baseline_result, runnable)
        finally:
            bench.close()
        if baseline_result.status != "built":
            raise StageError(f"the baseline {BASELINE_VARIANT} could not be measured: {baseline_result.reason}",
                             where=ctx.store.uri, fix="check that the source model runs with the given inputs")
        measured = sum(1 for r in results if r.status == "built")
        unstable = sorted({r.variant for r in [baseline_result, *results] if any(not c.stable for c in r.configs)})
        message = f"measured {measured + 1} variant(s) on {target_name}"
        if unstable:
            message += f"; unstable within the time budget: {', '.join(unstable)}"
        return new_record(
            ctx, "benchmark", message=message, benchmarks=[baseline_result, *results],
            payload={
                "environment": describe_environment(versions),
                "plan": {"batch_sizes": plan.batch_sizes, "threads": plan.threads,
                         "warmup_runs": plan.policy.warmup, "min_rounds": plan.policy.min_rounds,
                         "time_budget_s": plan.policy.budget_s, "stability": plan.policy.stability,
                         "server": plan.server, "server_duration_s": plan.server_duration_s,
                         "finalists": plan.finalists},
                "final": final,
                "raw_latencies": {r.variant: raw_latency_key(target_name, r.variant, plan.selection_batch)
                                  for r in [baseline_result, *results]
                                  if str(plan.selection_batch) in r.best_by_batch},
            },
        )
