"""Acceptance: on keras.applications.MobileNetV2(weights=None) at batch 1, the selected variant's p50 is at
least 2.5x faster than the SavedModel-signature baseline on this 2-core machine (paired rounds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.pipeline import run_plan
from optismith.spec import parse_manifest

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_mobilenet_v2_winner_is_at_least_2_5x_faster_than_the_baseline(tmp_path: Path) -> None:
    import tensorflow as tf

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    model.export(str(tmp_path / "mobilenet"), verbose=False)
    manifest = parse_manifest(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "mobilenet"},
            "spec": {
                "model": {"uri": str(tmp_path / "mobilenet")},
                "variants": ["tflite-fp32", "tflite-int8", "onnx-fp32"],
                "calibration": {"synthetic": True, "samples": 16},
                "benchmark": {"batchSizes": [1], "timeBudget": "2s", "minRounds": 15, "scenarios": ["singleStream"]},
                # Random weights give a near-uniform softmax, so int8 agreement with the source says nothing;
                # this test is about speed, the accuracy gate is exercised on the trained digits model.
                "selection": {"constraints": {"maxAccuracyDrop": "100%"}},
                "output": {"uri": str(tmp_path / "runs")},
            },
        }
    )
    outcome = run_plan(manifest, str(tmp_path / "runs" / "r1"))
    selection = next(r for r in outcome.records if r.stage == "select").payload["selection"]
    winner = next(
        c
        for c in selection["candidates"]
        if (c["variant"], c["target"]) == (selection["winner"], selection["winner_target"])
    )
    print(
        f"MobileNetV2 batch 1: winner {winner['variant']} p50 {winner['latency_p50_ms']:.2f} ms, "
        f"{winner['speedup']:.2f}x the baseline"
    )
    assert winner["speedup"] >= 2.5, selection["candidates"]
