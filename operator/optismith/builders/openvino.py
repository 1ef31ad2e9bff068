"""OpenVINO IR variants, converted from the float ONNX model, else from the baseline SavedModel (catalog
option: `precision`).

f32 and bf16 share one IR with f32 weights: the precision is the runtime's INFERENCE_PRECISION_HINT
(catalog runtime_options), not the file's. int8 is NNCF's (optismith.builders.openvino_int8).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable, first_meaningful_line
from optismith.builders.onnx import float_onnx
from optismith.runtimes import get_runtime

IR_FILE = "model.xml"


def float_ir(inputs: BuildInputs) -> tuple[Any, dict[str, str]]:
    """The float model as an openvino.Model and where it came from, converted once per stage (clone it
    before changing it)."""
    import openvino as ov

    def convert() -> tuple[Any, dict[str, str]]:
        source, _ = float_onnx(inputs)
        try:
            return ov.convert_model(str(source)), {"source": "onnx"}
        except Exception as error:
            # Measured on a Keras 3 GRU: tf2onnx leaves it a generic Loop whose body OpenVINO's ONNX frontend
            # refuses (more body inputs than loop-carried values), while its TensorFlow frontend converts the
            # SavedModel's While loop. Its inputs and outputs keep the signature's names.
            model = ov.convert_model(str(inputs.baseline()))
            return model, {"source": "savedmodel", "why_not_onnx": first_meaningful_line(error)}

    result: tuple[Any, dict[str, str]] = inputs.shared("OpenVINO float model", convert)
    return result


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """An OpenVINO IR directory. Weights stay f32: save_model would otherwise compress them to f16."""
    missing = get_runtime(variant.runtime).availability()
    if missing:
        raise Unavailable(missing)
    import openvino as ov

    shared, details = float_ir(inputs)
    model = shared.clone()
    artifact.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(artifact / IR_FILE), compress_to_fp16=False)
    return {**details, "openvino": metadata.version("openvino"), "precision": variant.options["precision"],
            "weights": "f32", "inference_precision_hint": variant.runtime_options.get("precision", "f32"),
            "op_count": len(model.get_ops())}
