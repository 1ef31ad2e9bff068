"""The mixed-int8 variants through their real toolchains (TFLite's QuantizationDebugger, ONNX Runtime's
quantize_static): on the trained digits model full int8 already passes the gate, so each is skipped with that
reason instead of building a duplicate of its full-int8 sibling."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.builders.mixed import FULL_INT8_PASSES
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_mixed_variants_are_skipped_where_full_int8_passes(digits_dir: Path, tmp_path: Path) -> None:
    data = digits_dir / "data"
    verdicts = build_variants(digits_dir / "model", tmp_path, ["tflite-int8-mixed", "onnx-int8-mixed"],
                              calibration={"uri": str(data / "calibration.npz")},
                              evaluation={"uri": str(data / "eval.npz")})
    for name in ("tflite-int8-mixed", "onnx-int8-mixed"):
        record = verdicts.records[name]
        assert record.status == "skipped", verdicts.explain()
        assert FULL_INT8_PASSES in (record.reason or ""), verdicts.explain()
