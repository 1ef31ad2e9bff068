"""A selection result shared by the status and metrics tests, and the RunResults that carries one."""

from __future__ import annotations

from typing import Any

from optismith.results import RunResults, Selection

RESULTS = {
    "selection": {
        "objective": "latencyP50",
        "batch_size": 1,
        "winner": "tflite-int8",
        "winner_target": "cpu",
        "outcome": "selected",
        "message": "tflite-int8 is 3.10x faster",
        "candidates": [
            {
                "variant": "tflite-int8",
                "target": "cpu",
                "latency_p50_ms": 0.31,
                "latency_p99_ms": 0.52,
                "throughput_per_s": 3000.0,
                "size_bytes": 100000,
                "accuracy_drop": 0.002,
                "speedup": 3.1,
                "objective_value": 0.31,
                "passed": True,
            },
            {
                "variant": "tf-savedmodel",
                "target": "cpu",
                "latency_p50_ms": 0.96,
                "latency_p99_ms": 1.5,
                "throughput_per_s": 1000.0,
                "size_bytes": 400000,
                "accuracy_drop": 0.0,
                "speedup": 1.0,
                "objective_value": 0.96,
                "passed": True,
            },
        ],
    }
}


def run_results(selection: dict[str, Any] | None = None) -> RunResults:
    """A RunResults as the report stage writes it, with `selection` (RESULTS' by default)."""
    chosen = RESULTS["selection"] if selection is None else selection
    return RunResults(name="digits", spec_digest="0" * 64, started_at="2026-01-01T00:00:00Z",
                      finished_at="2026-01-01T00:01:00Z", environment={}, source=None, stages=[], variants=[],
                      benchmarks=[], accuracy=[], selection=Selection.model_validate(chosen))
