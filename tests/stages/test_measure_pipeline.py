"""benchmark -> evaluate -> select -> report -> promote with the real runtimes on the digits model."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.results import PromotionManifest, RunResults
from optismith.spec import ModelOptimization


@pytest.mark.tf
@pytest.mark.slow
def test_real_runtimes_are_measured_selected_reported_and_promoted(digits_dir: Path, tmp_path: Path) -> None:
    from optismith.pipeline import run_plan
    from optismith.runs.manifest import verify_manifest
    from optismith.storage.local import LocalStorage

    manifest = ModelOptimization.model_validate(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "digits"},
            "spec": {
                "model": {"uri": str(digits_dir / "model")},
                "variants": ["tf-savedmodel", "tflite-fp32", "onnx-fp32"],
                "evaluation": {"uri": str(digits_dir / "data" / "eval.npz"), "samples": 200},
                "benchmark": {
                    "batchSizes": [1, 4],
                    "threads": [1],
                    "minRounds": 10,
                    "timeBudget": "500ms",
                    "serverDuration": "200ms",
                },
                "output": {"uri": str(tmp_path / "out")},
                "promotion": {"uri": str(tmp_path / "promoted")},
            },
        }
    )
    outcome = run_plan(manifest, str(tmp_path / "out" / "run"))
    store = LocalStorage(outcome.run_uri)
    results = RunResults.model_validate_json(store.read_bytes("results.json"))

    measured = {b.variant: b for b in results.benchmarks if b.status == "built"}
    assert {"tf-savedmodel", "tflite-fp32", "onnx-fp32"} <= set(measured)
    for bench in measured.values():
        for config in bench.configs:
            assert config.latency.p50_ms > 0 and config.speedup > 0 and config.rounds >= 10
        assert bench.best_by_batch["1"].server_p99_ms is not None
    baseline = next(a for a in results.accuracy if a.variant == "tf-savedmodel")
    assert baseline.metric == "top1" and baseline.value > 0.85 and baseline.samples == 200
    assert all(abs(a.drop) < 0.02 for a in results.accuracy)  # float variants match the source
    assert results.selection is not None and results.selection.outcome == "selected"
    assert results.environment["cpu"]["versions"]["tensorflow"]

    verify_manifest(store)
    promoted = PromotionManifest.model_validate_json((tmp_path / "promoted" / "promotion.json").read_bytes())
    assert promoted.variant == results.selection.winner
    assert (tmp_path / "promoted" / promoted.artifact).exists()
