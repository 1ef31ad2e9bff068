"""OpenVINO IR variants, converted from the float ONNX model (catalog option: `precision`)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable
from optismith.builders.onnx import float_onnx
from optismith.runtimes import get_runtime

IR_FILE = "model.xml"


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """An OpenVINO IR directory. Weights stay f32: save_model would otherwise compress them to f16."""
    missing = get_runtime(variant.runtime).availability()
    if missing:
        raise Unavailable(missing)
    import openvino as ov

    source, _ = float_onnx(inputs)
    artifact.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(source))
    ov.save_model(model, str(artifact / IR_FILE), compress_to_fp16=False)
    return {"source": "onnx", "openvino": metadata.version("openvino"), "precision": variant.options["precision"],
            "op_count": len(model.get_ops())}
