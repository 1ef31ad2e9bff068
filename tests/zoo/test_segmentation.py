"""A U-Net with per-pixel class scores: which variants build, and their agreement is per pixel."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.zoo.segmentation_models import unet
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]

VARIANTS = ["tf-grappler", "tflite-fp32", "onnx-fp32"]


def test_a_unet_builds_and_its_variants_agree_per_pixel(tmp_path: Path) -> None:
    verdicts = build_variants(unet(tmp_path / "unet"), tmp_path, VARIANTS)
    for name in VARIANTS:
        assert verdicts.status(name) == "built", verdicts.explain()
    for name in ("tflite-fp32", "onnx-fp32"):
        numerics = verdicts.records[name].numerics
        assert numerics is not None and numerics.agreement_per == "element", verdicts.explain()
        assert numerics.top1_agreement is not None and numerics.top1_agreement >= 0.99, numerics
