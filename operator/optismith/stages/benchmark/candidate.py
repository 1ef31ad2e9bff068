"""Measuring one candidate (a variant, or the baseline itself) at every thread count and batch size of
the plan, then in the server scenario at the selection batch size.

A variant runs in paired rounds with the baseline (optismith.measure.paired); the baseline's sessions stay
loaded for the whole stage, and the latencies it showed in every pairing are pooled, so the baseline's own
record comes from the same rounds as the variants'. Memory: `peak_rss_bytes` is the largest increase of
the resident set size (sampled after loading, after the first inference and after every configuration)
over what the process held just before the candidate was loaded; on a GPU target `gpu_memory_peak_bytes`
is the same for the GPU memory in use (NVML). Cold start is load + first inference in a process that has
already imported the runtime's library.

On a GPU, a session whose inputs and outputs stay in device memory (`Session.device_resident`) is timed
through `Session.bind` (device-resident latency, the GPU synchronized after each call) and then end to end
through `Session.run` (copies included: `host_latency`). A batch size that runs out of device memory ends
the sweep for larger ones: the sweep is bounded by memory, not by a fixed list.
"""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optismith import tensors
from optismith.errors import StageError
from optismith.measure.gpu import GpuMemory, PeakTracker
from optismith.measure.host import current_rss_bytes
from optismith.measure.paired import PairedTimes, RoundsPolicy, paired_rounds, serve_poisson
from optismith.measure.statistics import is_stable, latency_stats
from optismith.results import ConfigResult, VariantBenchmark, VariantRecord
from optismith.runs import layout
from optismith.runs.eligibility import device_of
from optismith.runs.stage import StageContext
from optismith.runtimes import Runtime, Session
from optismith.runtimes.base import out_of_device_memory
from optismith.stages.benchmark.sweep import (
    BenchmarkPlan,
    best_by_batch,
    config_result,
    default_server_qps,
    with_best,
)

SYNTHETIC_SAMPLES = 64
Call = Callable[[], object]


@dataclass
class Feeds:
    """Source arrays (the inspect stage's samples; invented inputs when there are none) and the
    per-(session inputs, batch) feeds cut from them."""

    arrays: dict[str, np.ndarray] | None
    cache: dict[tuple[object, int], list[np.ndarray]] = field(default_factory=dict)

    def for_session(self, session: Session, batch: int) -> list[np.ndarray]:
        key = (tuple((spec.name, spec.dtype) for spec in session.inputs), batch)
        if key not in self.cache:
            arrays = self.arrays if self.arrays is not None else tensors.synthetic(session.inputs,
                                                                                   SYNTHETIC_SAMPLES)
            self.cache[key] = tensors.batch_of(tensors.align(arrays, session.inputs), batch)
        return self.cache[key]

    def call(self, session: Session, batch: int) -> Call:
        """The call the session is measured by: device-resident where it keeps data on the GPU."""
        return session.bind(self.for_session(session, batch))

    def host_call(self, session: Session, batch: int) -> Call:
        """The end-to-end call: host arrays in, host arrays out."""
        feeds = self.for_session(session, batch)
        return lambda: session.run(feeds)


class OneSession:
    """At most one session of a candidate open at a time, so two thread counts never share memory."""

    def __init__(self, runtime: type[Runtime], path: Path, options: dict[str, Any]) -> None:
        self.runtime, self.path, self.options = runtime, path, options
        self.threads: int | None = None
        self.session: Session | None = None

    def get(self, threads: int) -> Session:
        if self.session is None or self.threads != threads:
            self.close()
            self.session = self.runtime.load(self.path, threads=threads, options=self.options)
            self.threads = threads
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
            self.threads = None
            gc.collect()


class Baseline:
    """The baseline's sessions, one per thread count, loaded up front and kept for the whole stage."""

    def __init__(self, ctx: StageContext, record: VariantRecord, runtime: type[Runtime], options: dict[str, Any],
                 feeds: Feeds, plan: BenchmarkPlan) -> None:
        self.ctx, self.record, self.runtime, self.options = ctx, record, runtime, options
        self.feeds, self.plan = feeds, plan
        self.path = ctx.fetch(record.artifact or "")
        self.sessions: dict[int, Session] = {}
        self.pool: dict[tuple[int, int], list[np.ndarray]] = {}  # (batch, threads) -> latencies in pairings
        self.cold_ms: float | None = None
        self.rss_before = current_rss_bytes()
        self.rss_peak = self.rss_before
        self.gpu_peak = PeakTracker(GpuMemory()) if device_of(ctx.target) == "gpu" else None

    def prepare(self) -> None:
        """Without the baseline nothing can be compared: load it for every thread count first."""
        for threads in self.plan.threads:
            try:
                self.session(threads)
            except Exception as error:
                raise StageError(
                    f"the baseline {self.record.name} does not run with {threads} threads: "
                    f"{type(error).__name__}: {error}"[:2000], where=self.ctx.store.key_uri(self.record.artifact or ""),
                    fix="check that the source model runs on the inspect stage's sample inputs",
                ) from error

    def session(self, threads: int) -> Session:
        if threads not in self.sessions:
            started = time.perf_counter()
            session = self.runtime.load(self.path, threads=threads, options=self.options)
            session.run(self.feeds.for_session(session, self.plan.batch_sizes[0]))
            if self.cold_ms is None:
                self.cold_ms = (time.perf_counter() - started) * 1e3
            self.rss_peak = max(self.rss_peak, current_rss_bytes())
            if self.gpu_peak is not None:
                self.gpu_peak.sample()
            self.sessions[threads] = session
        return self.sessions[threads]

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        gc.collect()


@dataclass
class _Sweep:
    """What one candidate's sweep over threads x batch sizes produced."""

    configs: list[ConfigResult] = field(default_factory=list)
    raw: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (batch, threads) -> seconds
    errors: list[str] = field(default_factory=list)
    cold_ms: float | None = None
    execution: dict[str, Any] = field(default_factory=dict)


class CandidateBench:
    """Measures candidates of one target against its baseline."""

    def __init__(self, ctx: StageContext, plan: BenchmarkPlan, baseline: Baseline, feeds: Feeds) -> None:
        self.ctx, self.plan, self.baseline, self.feeds = ctx, plan, baseline, feeds
        self.gpu = GpuMemory() if device_of(ctx.target) == "gpu" else None
        self.gpu_peak: PeakTracker | None = None

    def measure_variant(self, variant: VariantRecord, runtime: type[Runtime],
                        options: dict[str, Any]) -> VariantBenchmark:
        gc.collect()
        self.gpu_peak = PeakTracker(self.gpu) if self.gpu is not None else None
        sessions = OneSession(runtime, self.ctx.fetch(variant.artifact or ""), options)
        rss_before = current_rss_bytes()

        def paired(session: Session, threads: int, batch: int) -> PairedTimes:
            baseline = self.baseline.session(threads)
            times = paired_rounds(self.feeds.call(session, batch), self.feeds.call(baseline, batch), self.plan.policy)
            if times.baseline_s is not None:
                self.baseline.pool.setdefault((batch, threads), []).append(times.baseline_s)
            return times

        try:
            sweep, peak = self._sweep(variant.name, sessions.get, paired, rss_before, first_call_is_cold=True)
            result = self._result(variant.name, sweep, sessions.get, max(0, peak - rss_before))
            gpu_peak = self.gpu_peak.growth_bytes if self.gpu_peak is not None else None
            return result.model_copy(update={"gpu_memory_peak_bytes": gpu_peak})
        finally:
            sessions.close()
            self.gpu_peak = None

    def measure_baseline(self) -> VariantBenchmark:
        """The baseline from the latencies it showed in every pairing (on its own where none was paired)."""

        def pooled(session: Session, threads: int, batch: int) -> PairedTimes:
            samples = self.baseline.pool.get((batch, threads))
            if samples:
                merged = np.concatenate(samples)
                return PairedTimes(merged, merged, is_stable(merged, self.plan.policy.stability))
            return paired_rounds(self.feeds.call(session, batch), None, self.plan.policy)

        self.gpu_peak = self.baseline.gpu_peak
        try:
            sweep, _ = self._sweep(self.baseline.record.name, self.baseline.session, pooled, 0)
        finally:
            self.gpu_peak = None
        sweep.configs = [c.model_copy(update={"speedup": 1.0}) for c in sweep.configs]
        sweep.cold_ms = self.baseline.cold_ms
        peak = max(0, self.baseline.rss_peak - self.baseline.rss_before)
        result = self._result(self.baseline.record.name, sweep, self.baseline.session, peak)
        gpu = self.baseline.gpu_peak
        return result.model_copy(update={"gpu_memory_peak_bytes": gpu.growth_bytes if gpu is not None else None})

    def _sweep(self, name: str, session_for: Callable[[int], Session],
               timed: Callable[[Session, int, int], PairedTimes], peak: int,
               first_call_is_cold: bool = False) -> tuple[_Sweep, int]:
        sweep = _Sweep()
        for threads in self.plan.threads:
            started = time.perf_counter()
            try:
                session = session_for(threads)
            except Exception as error:
                sweep.errors.append(f"load with {threads} threads: {type(error).__name__}: {error}")
                continue
            peak = max(peak, current_rss_bytes())
            sweep.execution = sweep.execution or session.execution()
            out_of_memory_at: int | None = None
            for batch in self.plan.batch_sizes:
                if out_of_memory_at is not None and batch > out_of_memory_at:
                    sweep.errors.append(f"batch {batch}: not measured (batch {out_of_memory_at} ran out of "
                                        "device memory)")
                    continue
                if session.fixed_batch not in (None, batch):
                    sweep.errors.append(f"batch {batch}: not measured (the artifact's batch size is fixed at "
                                        f"{session.fixed_batch})")
                    continue
                try:
                    if first_call_is_cold and sweep.cold_ms is None:
                        session.run(self.feeds.for_session(session, batch))
                        sweep.cold_ms = (time.perf_counter() - started) * 1e3
                        peak = max(peak, current_rss_bytes())
                    times = timed(session, threads, batch)
                    host = self._host_latency(session, batch)
                except Exception as error:
                    sweep.errors.append(f"batch {batch}, {threads} threads: {type(error).__name__}: {error}")
                    if out_of_device_memory(error):
                        out_of_memory_at = batch
                    continue
                peak = max(peak, current_rss_bytes())
                if self.gpu_peak is not None:
                    self.gpu_peak.sample()
                config = config_result(batch, threads, times).model_copy(
                    update={"host_latency": host, "runtime_settings": {"threads": threads, **session.settings()}})
                sweep.configs.append(config)
                sweep.raw[(batch, threads)] = times.variant_s
                self.progress(name, config)
        return sweep, peak

    def _result(self, name: str, sweep: _Sweep, session_for: Callable[[int], Session],
                peak_rss: int) -> VariantBenchmark:
        best = best_by_batch(sweep.configs)
        served = best.get(str(self.plan.selection_batch)) if self.plan.server else None
        if served is not None:
            # The server scenario's wall time is fixed (serverDuration) however fast the model is, so it runs
            # once: at the selection batch size (the one that gets deployed) and its best thread count.
            best[str(served.batch_size)] = self.server(name, session_for(served.threads), served)
        selected = best.get(str(self.plan.selection_batch))
        if selected is not None:
            self.save_raw(name, selected.batch_size, sweep.raw[(selected.batch_size, selected.threads)])
        return VariantBenchmark(
            variant=name, target=self.ctx.target_name, status="built" if sweep.configs else "failed",
            reason="; ".join(sweep.errors)[:2000], cold_start_ms=sweep.cold_ms, peak_rss_bytes=peak_rss,
            execution=sweep.execution, configs=with_best(sweep.configs, best), best_by_batch=best,
        )

    def _host_latency(self, session: Session, batch: int) -> Any:
        """End to end (copies included) for device-resident sessions, timed on its own for half the budget."""
        if not session.device_resident:
            return None
        policy = self.plan.policy
        half = RoundsPolicy(warmup=min(2, policy.warmup), min_rounds=policy.min_rounds,
                            budget_s=policy.budget_s / 2, stability=policy.stability)
        return latency_stats(paired_rounds(self.feeds.host_call(session, batch), None, half).variant_s)

    def server(self, name: str, session: Session, config: ConfigResult) -> ConfigResult:
        qps = self.plan.server_qps or default_server_qps(config)
        run = serve_poisson(self.feeds.call(session, config.batch_size), qps, self.plan.server_duration_s)
        if run.latencies_s.size == 0:
            return config
        served = config.model_copy(update={"server_p99_ms": float(np.percentile(run.latencies_s, 99) * 1e3),
                                           "server_qps": run.achieved_qps})
        self.ctx.progress(f"{name} b{served.batch_size} t{served.threads} server: p99 "
                          f"{served.server_p99_ms or 0.0:.3f} ms at {served.server_qps or 0.0:.0f} requests/s")
        return served

    def progress(self, name: str, config: ConfigResult) -> None:
        flag = "" if config.stable else " (unstable)"
        self.ctx.progress(f"{name} b{config.batch_size} t{config.threads}: p50 {config.latency.p50_ms:.3f} ms, "
                          f"{config.speedup:.2f}x vs baseline, {config.rounds} rounds{flag}")

    def save_raw(self, variant: str, batch: int, seconds_array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(seconds_array, dtype=np.float64) * 1e3)
        self.ctx.store.write_bytes(layout.raw_latencies(self.ctx.target_name, variant, batch), buffer.getvalue())
