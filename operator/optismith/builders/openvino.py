"""OpenVINO IR variants, converted from the float ONNX model (catalog option: `precision`).

f32 and bf16 share one IR with f32 weights: the precision is the runtime's INFERENCE_PRECISION_HINT
(catalog runtime_options), not the file's. int8 is NNCF's (optismith.builders.openvino_int8).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable
from optismith.builders.onnx import float_onnx
from optismith.runtimes import get_runtime

IR_FILE = "model.xml"


def float_ir(inputs: BuildInputs) -> Any:
    """The float ONNX model as an openvino.Model, converted once per stage (clone it before changing it)."""
    import openvino as ov

    def convert() -> Any:
        source, _ = float_onnx(inputs)
        return ov.convert_model(str(source))

    return inputs.shared("OpenVINO float model", convert)


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """An OpenVINO IR directory. Weights stay f32: save_model would otherwise compress them to f16."""
    missing = get_runtime(variant.runtime).availability()
    if missing:
        raise Unavailable(missing)
    import openvino as ov

    model = float_ir(inputs).clone()
    artifact.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(artifact / IR_FILE), compress_to_fp16=False)
    return {"source": "onnx", "openvino": metadata.version("openvino"), "precision": variant.options["precision"],
            "weights": "f32", "inference_precision_hint": variant.runtime_options.get("precision", "f32"),
            "op_count": len(model.get_ops())}
