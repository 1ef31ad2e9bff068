"""Metrics: per-resource series appear with results and disappear with the resource."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from optismith.controller.metrics import OperatorMetrics
from tests.controller.controller_results import RESULTS, run_results


def scrape(metrics: OperatorMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_series_follow_the_resource_lifecycle() -> None:
    metrics = OperatorMetrics()
    metrics.observe_results("ml", "digits", run_results())
    text = scrape(metrics)
    assert (
        'optismith_benchmark_latency_seconds{name="digits",namespace="ml",quantile="0.99",target="cpu",'
        'variant="tflite-int8"} 0.00052'
    ) in text
    assert 'optismith_winner_info{name="digits",namespace="ml",target="cpu",variant="tflite-int8"} 1.0' in text
    assert "optismith_build_info" in text
    metrics.set_phase("ml", "digits", "Succeeded")
    assert 'optismith_resources{phase="Succeeded"} 1.0' in scrape(metrics)
    metrics.forget("ml", "digits")
    text = scrape(metrics)
    assert 'name="digits"' not in text
    assert 'optismith_resources{phase="Succeeded"} 0.0' in text


def test_counters_use_base_units_and_total_suffix() -> None:
    metrics = OperatorMetrics()
    metrics.job_finished("prepare", "succeeded", 12.5)
    text = scrape(metrics)
    assert 'optismith_jobs_finished_total{phase="prepare",result="succeeded"} 1.0' in text
    assert 'optismith_stage_duration_seconds_count{phase="prepare"} 1.0' in text


def test_queue_depth_sums_over_resources_and_failures_start_at_zero() -> None:
    metrics = OperatorMetrics()
    metrics.set_queued("a", "x", 2)
    metrics.set_queued("b", "y", 1)
    assert "optismith_queued_steps 3.0" in scrape(metrics)
    metrics.forget("a", "x")
    assert "optismith_queued_steps 1.0" in scrape(metrics)
    assert 'optismith_jobs_finished_total{phase="measure",result="failed"} 0.0' in scrape(metrics)


def test_every_candidate_series_in_base_units_and_a_new_run_replaces_the_old() -> None:
    metrics = OperatorMetrics()
    metrics.observe_results("ml", "digits", run_results())
    samples = {
        (s.name, s.labels.get("variant"), s.labels.get("quantile")): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.labels.get("name") == "digits"
    }
    assert samples == pytest.approx({
        ("optismith_benchmark_latency_seconds", "tflite-int8", "0.5"): 0.00031,
        ("optismith_benchmark_latency_seconds", "tflite-int8", "0.99"): 0.00052,
        ("optismith_benchmark_latency_seconds", "tf-savedmodel", "0.5"): 0.00096,
        ("optismith_benchmark_latency_seconds", "tf-savedmodel", "0.99"): 0.0015,
        ("optismith_benchmark_throughput_samples_per_second", "tflite-int8", None): 3000.0,
        ("optismith_benchmark_throughput_samples_per_second", "tf-savedmodel", None): 1000.0,
        ("optismith_variant_size_bytes", "tflite-int8", None): 100000.0,
        ("optismith_variant_size_bytes", "tf-savedmodel", None): 400000.0,
        ("optismith_variant_speedup_ratio", "tflite-int8", None): 3.1,
        ("optismith_variant_speedup_ratio", "tf-savedmodel", None): 1.0,
        ("optismith_variant_accuracy_delta_ratio", "tflite-int8", None): 0.002,
        ("optismith_variant_accuracy_delta_ratio", "tf-savedmodel", None): 0.0,
        ("optismith_winner_info", "tflite-int8", None): 1.0,
        ("optismith_winner_info", "tf-savedmodel", None): 0.0,
    })
    assert "# TYPE optismith_variant_speedup_ratio gauge" in scrape(metrics)

    # The next run measured one candidate, without a p99 or a size: the old series go, nothing is invented.
    candidate = {**RESULTS["selection"]["candidates"][1], "latency_p99_ms": None, "size_bytes": None}
    metrics.observe_results("ml", "digits", run_results({**RESULTS["selection"], "winner": "tf-savedmodel",
                                                         "candidates": [candidate]}))
    text = scrape(metrics)
    assert 'variant="tflite-int8"' not in text
    assert 'optismith_winner_info{name="digits",namespace="ml",target="cpu",variant="tf-savedmodel"} 1.0' in text
    assert 'quantile="0.99"' not in text and "optismith_variant_size_bytes{" not in text
    assert 'optismith_benchmark_latency_seconds{name="digits",namespace="ml",quantile="0.5"' in text
