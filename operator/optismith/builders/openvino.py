"""OpenVINO IR variants, converted from the float ONNX model, else from the baseline SavedModel (catalog
option: `precision`)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable, first_meaningful_line
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
    details: dict[str, Any] = {"source": "onnx"}
    try:
        model = ov.convert_model(str(source))
    except Exception as error:
        # Measured on a Keras 3 GRU: tf2onnx leaves it a generic Loop whose body OpenVINO's ONNX frontend
        # refuses (more body inputs than loop-carried values), while its TensorFlow frontend converts the
        # SavedModel's While loop. Its inputs and outputs keep the signature's names.
        model = ov.convert_model(str(inputs.baseline()))
        details = {"source": "savedmodel", "why_not_onnx": first_meaningful_line(error)}
    ov.save_model(model, str(artifact / IR_FILE), compress_to_fp16=False)
    return {**details, "openvino": metadata.version("openvino"), "precision": variant.options["precision"],
            "op_count": len(model.get_ops())}
