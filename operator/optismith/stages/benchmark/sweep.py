"""Planning the sweep: which batch sizes and thread counts, how long each configuration is measured, and
turning the timings of one configuration into a ConfigResult."""

from __future__ import annotations

from dataclasses import dataclass

from optismith.measure.host import default_threads
from optismith.measure.paired import PairedTimes, RoundsPolicy
from optismith.measure.statistics import latency_stats
from optismith.results import ConfigResult
from optismith.spec import ModelOptimizationSpec, percent, seconds


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
    tie_budget_s: float = 0.0

    @classmethod
    def from_spec(cls, spec: ModelOptimizationSpec, device: str = "cpu") -> BenchmarkPlan:
        """On a GPU target the CPU threads only feed the device: one setting (the spec's, else 1), not a sweep."""
        bench = spec.benchmark
        threads = list(bench.threads) or default_threads()
        if device == "gpu":
            threads = [max(bench.threads)] if bench.threads else [1]
        return cls(
            batch_sizes=list(bench.batch_sizes),
            threads=threads,
            policy=RoundsPolicy(warmup=bench.warmup_runs, min_rounds=bench.min_rounds,
                                budget_s=seconds(bench.time_budget), stability=percent(bench.stability)),
            server="server" in bench.scenarios,
            server_qps=float(bench.server_qps) if bench.server_qps else None,
            server_duration_s=seconds(bench.server_duration),
            selection_batch=spec.selection.batch_size,
            finalists=bench.finalists,
            tie_budget_s=seconds(bench.tie_budget),
        )

    def describe(self) -> dict[str, object]:
        return {"batch_sizes": self.batch_sizes, "threads": self.threads, "warmup_runs": self.policy.warmup,
                "min_rounds": self.policy.min_rounds, "time_budget_s": self.policy.budget_s,
                "stability": self.policy.stability, "server": self.server,
                "server_duration_s": self.server_duration_s, "finalists": self.finalists,
                "tie_budget_s": self.tie_budget_s}


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


def with_best(configs: list[ConfigResult], best: dict[str, ConfigResult]) -> list[ConfigResult]:
    """The configs, with the best ones replaced by their updated copies (server numbers, the final's)."""
    updated = {(c.batch_size, c.threads): c for c in best.values()}
    return [updated.get((c.batch_size, c.threads), c) for c in configs]
