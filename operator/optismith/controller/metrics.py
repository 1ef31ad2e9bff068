"""Prometheus metrics of the operator: benchmark results per (namespace, name, variant, target), Job
outcomes, stage durations, resources by condition, reconcile errors and build info.

Naming follows Prometheus conventions: `optismith_` prefix, base units (seconds, bytes), `_total`
for counters. Per-resource series are removed when the resource is deleted.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from optismith import __version__

RESOURCE_LABELS = ("namespace", "name", "variant", "target")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Gauge("optismith_benchmark_latency_seconds", "Inference latency at the selection batch "
                             "size (best thread count), by quantile.", (*RESOURCE_LABELS, "quantile"), registry=r)
        self.throughput = Gauge("optismith_benchmark_throughput_samples_per_second",
                                "Samples per second at the selection batch size.", RESOURCE_LABELS, registry=r)
        self.size = Gauge("optismith_variant_size_bytes", "Artifact size.", RESOURCE_LABELS, registry=r)
        self.speedup = Gauge("optismith_variant_speedup_ratio", "Baseline p50 / variant p50 (paired rounds).",
                             RESOURCE_LABELS, registry=r)
        self.accuracy_delta = Gauge("optismith_variant_accuracy_delta_ratio",
                                    "Accuracy drop vs the source model (positive = worse).", RESOURCE_LABELS,
                                    registry=r)
        self.winner = Gauge("optismith_winner_info", "1 for the selected variant of each resource.",
                            RESOURCE_LABELS, registry=r)
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
        self._series: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (ns, name) -> {(variant, target)}
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

    def observe_results(self, namespace: str, name: str, results: dict[str, Any]) -> None:
        """Replace a resource's benchmark series with those of its latest completed run."""
        selection = results.get("selection") or {}
        with self._lock:
            self._forget_series(namespace, name)
            seen: set[tuple[str, str]] = set()
            for c in selection.get("candidates", []):
                labels = (namespace, name, c["variant"], c["target"])
                seen.add((c["variant"], c["target"]))
                for quantile, key in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
                    if c.get(key) is not None:
                        self.latency.labels(*labels, quantile).set(c[key] / 1000.0)
                if c.get("throughput_per_s") is not None:
                    self.throughput.labels(*labels).set(c["throughput_per_s"])
                if c.get("size_bytes") is not None:
                    self.size.labels(*labels).set(c["size_bytes"])
                if c.get("speedup") is not None:
                    self.speedup.labels(*labels).set(c["speedup"])
                if c.get("accuracy_drop") is not None:
                    self.accuracy_delta.labels(*labels).set(c["accuracy_drop"])
                self.winner.labels(*labels).set(
                    1 if (c["variant"], c["target"]) == (selection.get("winner"), selection.get("winner_target"))
                    else 0)
            self._series[(namespace, name)] = seen

    def _forget_series(self, namespace: str, name: str) -> None:
        for variant, target in self._series.pop((namespace, name), set()):
            labels = (namespace, name, variant, target)
            for quantile in ("0.5", "0.99"):
                _remove(self.latency, (*labels, quantile))
            for gauge in (self.throughput, self.size, self.speedup, self.accuracy_delta, self.winner):
                _remove(gauge, labels)

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
        with self._lock:
            self._forget_series(namespace, name)

    def job_finished(self, phase: str, result: str, duration_seconds: float | None) -> None:
        self.jobs.labels(phase, result).inc()
        if duration_seconds is not None:
            self.stage_duration.labels(phase).observe(duration_seconds)


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never observed, or already removed
        gauge.remove(*labels)
