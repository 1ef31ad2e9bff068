"""EfficientNetB0 (trained briefly on digits, tests/zoo/efficientnet_models.py): which variants build, which
pass the accuracy gate, and what the mixed-int8 search does where full int8 fails.

Measured (2-core shared host, ~5 min): float variants keep the baseline's 78.1% held-out accuracy; full int8
builds in both runtimes and fails the 1% gate (TFLite drop 2.0%, ONNX Runtime 1.0% by labels, 7-8% by
agreement). Keeping up to 32 of the most sensitive layers in float (the default budget: 6 doublings) does not
recover it in either runtime: this model's int8 error is spread over the whole network (the debugger's
per-layer RMSE/scale and ORT's per-node SQNR loss are all close), not concentrated in a few layers, so the
mixed variants fail with the attempts in their reason. A converter or ranking change that recovers it shows
up here as the mixed variants' status changing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stages import tf_sources
from tests.zoo.efficientnet_models import efficientnet_b0_digits
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]

FLOAT = ["tflite-fp32", "onnx-fp32"]
FULL_INT8 = ["tflite-int8", "onnx-int8"]
MIXED = ["tflite-int8-mixed", "onnx-int8-mixed"]
MAX_DROP = 0.01  # the spec's default selection.constraints.maxAccuracyDrop


def test_efficientnet_b0_variants(tmp_path: Path) -> None:
    from optismith.stages.evaluate import EvaluateStage

    source = efficientnet_b0_digits(tmp_path / "source")
    assert float(source["accuracy"]) > 0.6, source
    data = {"calibration": {"uri": str(source["calibration"])}, "evaluation": {"uri": str(source["eval"])}}
    verdicts = build_variants(Path(source["model"]), tmp_path / "run", [*FLOAT, *FULL_INT8, *MIXED], **data)
    for name in [*FLOAT, *FULL_INT8]:
        assert verdicts.status(name) == "built", verdicts.explain()
    ctx = tf_sources.context(Path(source["model"]), tmp_path / "run", variants=list(verdicts.records), **data)
    drops = {a.variant: a.drop for a in tf_sources.run(ctx, EvaluateStage).accuracy}
    for name in FLOAT:
        assert drops[name] <= MAX_DROP, (drops, verdicts.explain())
    for name in FULL_INT8:
        assert drops[name] > MAX_DROP, (drops, verdicts.explain())
    for name in MIXED:  # see the module docstring: the search runs its whole budget and says so
        record = verdicts.records[name]
        assert record.status == "failed", verdicts.explain()
        assert "no rebuild passed the gate" in (record.reason or "") and "32 float" in (record.reason or ""), \
            verdicts.explain()
