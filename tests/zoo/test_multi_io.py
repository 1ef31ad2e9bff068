"""A two-input, two-output Keras model saved as .h5: which variants build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.zoo.multi_io_models import two_in_two_out
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]

VARIANTS = ["tf-grappler", "tflite-fp32", "onnx-fp32"]


def test_a_two_in_two_out_h5_model_builds(tmp_path: Path) -> None:
    verdicts = build_variants(two_in_two_out(tmp_path / "model.h5"), tmp_path, VARIANTS)
    for name in VARIANTS:
        assert verdicts.status(name) == "built", verdicts.explain()
    numerics = verdicts.records["onnx-fp32"].numerics
    assert numerics is not None and numerics.agreement_per == "sample", verdicts.explain()  # the class output
