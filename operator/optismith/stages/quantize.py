"""The quantize stage: the TFLite variants of the baseline SavedModel, float to full int8
(optismith.builders.tflite; the catalog lists them)."""

from __future__ import annotations

from optismith.builders.stage import BuildStage


class QuantizeStage(BuildStage):
    variant_kind = "TFLite"
    name = "quantize"
