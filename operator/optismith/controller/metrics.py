"""Prometheus metrics of the operator: benchmark results per (namespace, name, variant, target), Job
outcomes, stage durations, resources by condition, reconcile errors and build info.

Naming follows Prometheus conventions: `optismith_` prefix, base units (seconds, bytes), `_total`
for counters. Per-resource series are removed when the resource is deleted.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

from optismith import __version__
from optismith.results import RunResults, Selection

RESOURCE_LABELS = ("namespace", "name", "variant", "target")


# Per-candidate benchmark series: (metric, help, result key, scale to base units). A quantile metric has
# one series per (key, quantile).
_LATENCY = ("optismith_benchmark_latency_seconds",
            "Inference latency at the selection batch size (best thread count), by quantile.")
_LATENCY_QUANTILES = (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms"))
_PER_CANDIDATE = (
    ("optismith_benchmark_throughput_samples_per_second", "Samples per second at the selection batch size.",
     "throughput_per_s"),
    ("optismith_variant_size_bytes", "Artifact size.", "size_bytes"),
    ("optismith_variant_speedup_ratio", "Baseline p50 / variant p50 (paired rounds).", "speedup"),
    ("optismith_variant_accuracy_delta_ratio", "Accuracy drop vs the source model (positive = worse).",
     "accuracy_drop"),
)
_WINNER = ("optismith_winner_info", "1 for the selected variant of each resource.")
_ROW_KEYS = tuple(key for _, key in _LATENCY_QUANTILES) + tuple(key for _, _, key in _PER_CANDIDATE)


class BenchmarkResults:
    """The benchmark series of every resource's latest completed run, built when scraped.

    A Gauge child per (resource, candidate, metric) cost ~1.7 KB: 7 of them per candidate, a dozen
    candidates per run, made 1000 resources ~140 MB of the operator's memory. Here a candidate is one
    tuple of numbers, and the exposition (names, labels, values) is the same.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (namespace, name) -> rows of (variant, target, is_winner, *values in _ROW_KEYS order)
        self._rows: dict[tuple[str, str], tuple[tuple[Any, ...], ...]] = {}

    def replace(self, namespace: str, name: str, selection: Selection | None) -> None:
        candidates = selection.candidates if selection else []
        winner = (selection.winner, selection.winner_target) if selection else (None, None)
        rows = tuple(
            (c.variant, c.target, (c.variant, c.target) == winner, *(_number(getattr(c, key)) for key in _ROW_KEYS))
            for c in candidates)
        with self._lock:
            self._rows[(namespace, name)] = rows

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._rows.pop((namespace, name), None)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(_LATENCY[0], _LATENCY[1], labels=(*RESOURCE_LABELS, "quantile")),
                *(GaugeMetricFamily(metric, text, labels=RESOURCE_LABELS) for metric, text, _ in _PER_CANDIDATE),
                GaugeMetricFamily(_WINNER[0], _WINNER[1], labels=RESOURCE_LABELS)]

    def collect(self) -> list[Metric]:
        latency, *per_candidate, winner = self.describe()
        with self._lock:
            snapshot = list(self._rows.items())
        for (namespace, name), rows in snapshot:
            for variant, target, is_winner, *values in rows:
                labels = [namespace, name, variant, target]
                for (quantile, _), value in zip(_LATENCY_QUANTILES, values, strict=False):
                    if value is not None:
                        latency.add_metric([*labels, quantile], value / 1000.0)
                for family, value in zip(per_candidate, values[len(_LATENCY_QUANTILES):], strict=True):
                    if value is not None:
                        family.add_metric(labels, value)
                winner.add_metric(labels, 1.0 if is_winner else 0.0)
        return [latency, *per_candidate, winner]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.benchmarks = BenchmarkResults()
        r.register(self.benchmarks)
        self.jobs = Counter("optismith_jobs_finished", "Jobs finished, by phase and result.", ("phase", "result"),
                            registry=r)
        self.jobs_created = Counter("optismith_jobs_created", "Jobs created, by phase.", ("phase",), registry=r)
        self.stage_duration = Histogram("optismith_stage_duration_seconds", "Wall time of finished Jobs by phase.",
                                        ("phase",), buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
                                        registry=r)
        self.resources = Gauge("optismith_resources", "ModelOptimizations by phase.", ("phase",), registry=r)
        self.queued_jobs = Gauge("optismith_queued_steps", "Steps waiting for a free Job slot.", registry=r)
        self.reconcile_errors = Counter("optismith_reconcile_errors_total", "Reconciliations that raised.",
                                        ("reason",), registry=r)
        self.build = Info("optismith_build", "Operator build information.", registry=r)
        self.build.info({"version": __version__})
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._queued: dict[tuple[str, str], int] = {}
        for phase in ("Queued", "Running", "Retrying", "Succeeded", "Failed"):
            self.resources.labels(phase).set(0)
        # Counters appear at zero, so increase() sees the first failure too.
        for job_phase in ("prepare", "measure", "finalize", "promote"):
            for result in ("succeeded", "failed"):
                self.jobs.labels(job_phase, result)
            self.jobs_created.labels(job_phase)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def observe_results(self, namespace: str, name: str, results: RunResults) -> None:
        """Replace a resource's benchmark series with those of its latest completed run."""
        self.benchmarks.replace(namespace, name, results.selection)

    def set_phase(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            key = (namespace, name)
            old = self._phases.pop(key, None)
            if old is not None:
                self.resources.labels(old).dec()
            if phase is not None:
                self._phases[key] = phase
                self.resources.labels(phase).inc()

    def set_queued(self, namespace: str, name: str, steps: int) -> None:
        """Queue depth across all resources, not just the last one reconciled."""
        with self._lock:
            if steps:
                self._queued[(namespace, name)] = steps
            else:
                self._queued.pop((namespace, name), None)
            self.queued_jobs.set(sum(self._queued.values()))

    def forget(self, namespace: str, name: str) -> None:
        self.set_phase(namespace, name, None)
        self.set_queued(namespace, name, 0)
        self.benchmarks.forget(namespace, name)

    def job_finished(self, phase: str, result: str, duration_seconds: float | None) -> None:
        self.jobs.labels(phase, result).inc()
        if duration_seconds is not None:
            self.stage_duration.labels(phase).observe(duration_seconds)
