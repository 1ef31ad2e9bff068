"""Metrics: per-resource series appear with results and disappear with the resource."""

from __future__ import annotations

from controller_results import RESULTS
from prometheus_client import generate_latest

from optismith.controller.metrics import OperatorMetrics


def scrape(metrics: OperatorMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_series_follow_the_resource_lifecycle() -> None:
    metrics = OperatorMetrics()
    metrics.observe_results("ml", "digits", RESULTS)
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
