"""The convert stage: variants for other runtimes -- ONNX Runtime (float and static int8), OpenVINO, and
TF-TRT on GPUs (optismith.builders.onnx, .openvino, .tftrt; the catalog lists them)."""

from __future__ import annotations

from optismith.builders.stage import BuildStage


class ConvertStage(BuildStage):
    variant_kind = "conversion"
    name = "convert"
    requires = ("freeze",)
