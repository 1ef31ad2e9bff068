"""ONNX Runtime variants (catalog options: `quantization` none / static-int8 / float16).

ONNX comes from the frozen GraphDef through tf2onnx (works on TF 2.21 / protobuf 7 as installed, no
workaround needed); the float model is converted once per stage and shared (BuildInputs.shared) by every
variant that starts from it. int8 is static QDQ with per-channel weights; dynamic quantization was measured
3-4x slower than float for CNNs on CPU, so it is offered only for transformers (builders/onnx_transformer.py).
float16 (GPU variants) converts weights and compute to fp16 and keeps float32 inputs and outputs (Cast nodes
at the boundary), so callers feed what the source model takes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optismith import catalog, tensors
from optismith.builders.base import BuildInputs
from optismith.builders.onnx_handlers import UnconvertedOps, register_handlers, unconverted_ops
from optismith.builders.reference import Calibration
from optismith.frameworks import import_tensorflow
from optismith.graphio import GraphIO
from optismith.results import TensorInfo

ONNX_OPSETS = (17, 15, 13)  # newest first; older ones only when a converter handler needs them
_CALIBRATION_BATCH = 8
# spec.calibration.method -> ONNX Runtime's CalibrationMethod member (the enum is imported with ORT, lazily)
_CALIBRATION_METHODS = {"minmax": lambda m: m.MinMax, "entropy": lambda m: m.Entropy,
                        "percentile": lambda m: m.Percentile}


def float_onnx(inputs: BuildInputs) -> tuple[Path, dict[str, Any]]:
    """The float ONNX model of the frozen graph (converted once per stage) and its conversion details."""

    def convert() -> tuple[Path, dict[str, Any]]:
        graph_def, io, source = inputs.functional_frozen()
        path = inputs.ctx.scratch("onnx-float") / "model.onnx"
        return path, {**frozen_graph_to_onnx(graph_def.SerializeToString(), io, path), "source": source}

    path, details = inputs.shared("float ONNX model", convert)
    return path, dict(details)


def frozen_graph_to_onnx(serialized: bytes, io: GraphIO, path: Path) -> dict[str, Any]:
    """tf2onnx from a frozen GraphDef, naming the ONNX inputs/outputs like the model's signature."""
    import onnx
    import tf2onnx

    tf = import_tensorflow()
    ins = [(t.tensor, t.name) for t in io.inputs]
    outs = [(t.tensor, t.name) for t in io.outputs]
    renames = {tensor: name for tensor, name in ins + outs if tensor != name}
    register_handlers()
    failures = []
    for opset in ONNX_OPSETS:
        graph_def = tf.compat.v1.GraphDef()  # tf2onnx rewrites the graph it is given: a fresh copy each try
        graph_def.ParseFromString(serialized)
        try:
            model, _ = tf2onnx.convert.from_graph_def(
                graph_def, input_names=[t for t, _ in ins], output_names=[t for t, _ in outs], opset=opset,
                tensors_to_rename=renames,
            )
        except Exception as error:
            failures.append((opset, error))
            continue
        left = unconverted_ops(model)
        if left:
            raise UnconvertedOps(left, f"tf2onnx {tf2onnx.__version__}")
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return {"converter": f"tf2onnx {tf2onnx.__version__}", "opset": opset, "source": "frozen graph",
                "op_count": len(model.graph.node)}
    raise failures[0][1]


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    source, details = float_onnx(inputs)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    if variant.options["quantization"] == "none":
        shutil.copyfile(source, artifact)
        return details
    if variant.options["quantization"] == "float16":
        return to_float16(source, details, artifact)
    return quantize_static_int8(source, details, inputs.calibration, inputs.reference.inputs, artifact,
                                method=inputs.ctx.spec.calibration.method)


def to_float16(source: Path, float_details: dict[str, Any], artifact: Path) -> dict[str, Any]:
    """fp16 weights and activations, float32 I/O (onnxruntime.transformers.float16, which ships with
    onnxruntime): the tensor-core precision of a GPU, at half the memory traffic."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(artifact))
    return {"precision": "float16 weights and compute, float32 inputs and outputs",
            "converter": "onnxruntime.transformers.float16 (keep_io_types)", "opset": float_details.get("opset"),
            "op_count": len(model.graph.node)}


def quantize_static_int8(source: Path, float_details: dict[str, Any], calibration: Calibration,
                         inputs: list[TensorInfo], artifact: Path, *, method: str = "minmax",
                         nodes_to_exclude: list[str] | None = None) -> dict[str, Any]:
    """Static QDQ int8: per-channel int8 weights, uint8 activations (on MobileNetV2 with AVX512-VNNI,
    u8 activations ran ~1.6 ms vs ~2.6 ms float; s8 activations were slower than float)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = artifact.with_name("preprocessed.onnx")
    try:
        # Measured on MobileNetV2: the pre-processed graph quantizes to a faster model. Symbolic shape
        # inference is skipped because it needs sympy; ONNX's own shape inference still runs.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        preprocessed = True
    except Exception:
        prepared = source
        preprocessed = False

    model_inputs = [i.name for i in onnx.load(str(prepared), load_external_data=False).graph.input]
    order = tensors.match_names(model_inputs, calibration.names)
    feed_names = {name: model_inputs[i] for name, i in zip(calibration.names, order, strict=True)}
    fixed_batch = inputs[0].shape[0] if inputs and inputs[0].shape else None
    batch_size = fixed_batch or _CALIBRATION_BATCH

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[dict[str, Any]] = calibration.batches(batch_size,
                                                                          complete_only=bool(fixed_batch))

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self._batches, None)
            return None if batch is None else {feed_names[n]: a for n, a in batch.items()}

    quantize_static(
        str(prepared), str(artifact), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=_CALIBRATION_METHODS[method](CalibrationMethod), nodes_to_exclude=nodes_to_exclude or [],
    )
    return {
        "quantization": "static QDQ int8: per-channel int8 weights, uint8 activations",
        "calibration": calibration.describe(), "calibration_samples": calibration.samples,
        "calibration_method": method, "preprocessed": preprocessed, "opset": float_details.get("opset"),
        "op_count": len(onnx.load(str(artifact), load_external_data=False).graph.node),
    }
