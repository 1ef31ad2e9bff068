"""The convert stage: variants for other runtimes -- ONNX Runtime (float and static int8), OpenVINO,
and TF-TRT on GPUs.

ONNX comes from the frozen GraphDef through tf2onnx (works on TF 2.21 / protobuf 7 as installed, no
workaround needed). int8 is static QDQ with per-channel weights; dynamic quantization was measured
3-4x slower than float for CNNs on CPU, so it is not offered.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from optismith.results import StageRecord, TensorInfo, VariantRecord
from optismith.runtimes import get_runtime
from optismith.runtimes.onnx import OnnxRuntime
from optismith.runtimes.openvino import OpenVINORuntime
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.building import (
    FROZEN_IO_KEY,
    Calibration,
    Reference,
    bare_name,
    build_variant,
    first_meaningful_line,
    load_reference,
    resolve_calibration,
    skipped,
)
from optismith.stages.variants import CATALOG, variant_key

STAGE = "convert"
CONVERT_VARIANTS = ("onnx-fp32", "onnx-int8", "openvino-fp32", "tftrt-fp16", "tftrt-int8")
ONNX_OPSETS = (17, 15, 13)  # newest first; older ones only when a converter handler needs them
TFTRT_NO_GPU = "TF-TRT needs a GPU: none visible to TensorFlow here (run on a gpu target)"
OPENVINO_IR_FILE = "model.xml"
_CALIBRATION_BATCH = 8


class FloatOnnx:
    """The float ONNX model, converted once and shared by onnx-fp32, onnx-int8 and openvino-fp32."""

    def __init__(self, ctx: StageContext) -> None:
        self._ctx = ctx
        self._path: Path | None = None
        self._details: dict[str, Any] = {}
        self._error: str | None = None

    def get(self) -> tuple[Path, dict[str, Any]]:
        if self._error is not None:
            raise RuntimeError(f"needs the float ONNX model, whose conversion failed: {self._error}")
        if self._path is None:
            try:
                self._path, self._details = self._convert()
            except Exception as error:
                self._error = first_meaningful_line(error)
                raise
        return self._path, dict(self._details)

    def _convert(self) -> tuple[Path, dict[str, Any]]:
        frozen_key = variant_key("tf-frozen")
        if not self._ctx.store.exists(frozen_key) or not self._ctx.store.exists(FROZEN_IO_KEY):
            raise FileNotFoundError(f"the frozen graph ({frozen_key} and {FROZEN_IO_KEY}) is missing: "
                                    "the freeze stage must build tf-frozen first")
        described = json.loads(self._ctx.fetch(FROZEN_IO_KEY).read_text())
        path = self._ctx.scratch("onnx-float") / "model.onnx"
        details = frozen_graph_to_onnx(self._ctx.fetch(frozen_key), described, path)
        return path, details


def frozen_graph_to_onnx(frozen: Path, described: dict[str, Any], path: Path) -> dict[str, Any]:
    """tf2onnx from a frozen GraphDef, naming the ONNX inputs/outputs like the model's signature."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    ins = [(str(i["tensor"]), str(i["name"])) for i in described["inputs"]]
    outs = [(str(o["tensor"]), str(o["name"])) for o in described["outputs"]]
    renames = {tensor: name for tensor, name in ins + outs if tensor != name}
    serialized = frozen.read_bytes()
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
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return {"converter": f"tf2onnx {tf2onnx.__version__}", "opset": opset, "source": "frozen graph",
                "op_count": len(model.graph.node)}
    raise failures[0][1]


@register_stage
class ConvertStage(Stage):
    name = STAGE
    requires = ("freeze",)
    description = "ONNX Runtime (fp32, static int8), OpenVINO and TF-TRT variants."

    def run(self, ctx: StageContext) -> StageRecord:
        wanted = [name for name in ctx.spec.variants if name in CONVERT_VARIANTS]
        if not wanted:
            return new_record(ctx, STAGE, message="no conversion variants requested")
        reference = load_reference(ctx)
        needs_calibration = any(CATALOG[name].needs_calibration for name in wanted)
        calibration = (resolve_calibration(ctx, reference.inputs) if needs_calibration
                       else Calibration("none", None, [], []))
        float_onnx = FloatOnnx(ctx)
        records = [self._variant(ctx, name, reference, calibration, float_onnx) for name in wanted]
        built = sum(r.status == "built" for r in records)
        message = f"built {built} of {len(records)} conversion variants"
        skipped_names = [r.name for r in records if r.status == "skipped"]
        if skipped_names:
            message += f" ({', '.join(skipped_names)} skipped)"
        return new_record(ctx, STAGE, message=message, variants=records,
                          payload={"calibration": calibration.payload()})

    def _variant(self, ctx: StageContext, name: str, reference: Reference, calibration: Calibration,
                 float_onnx: FloatOnnx) -> VariantRecord:
        if CATALOG[name].needs_calibration and not calibration.available:
            return skipped(name, calibration.unavailable_reason, built_by=STAGE)
        if name == "onnx-fp32":
            return build_variant(ctx, name, lambda artifact: _copy_float(float_onnx, artifact), OnnxRuntime,
                                 reference, built_by=STAGE)
        if name == "onnx-int8":
            return build_variant(
                ctx, name, lambda artifact: quantize_onnx(float_onnx, calibration, reference.inputs, artifact),
                OnnxRuntime, reference, built_by=STAGE,
            )
        if name == "openvino-fp32":
            reason = OpenVINORuntime.availability()
            if reason:
                return skipped(name, reason, built_by=STAGE)
            return build_variant(ctx, name, lambda artifact: onnx_to_openvino(float_onnx, artifact),
                                 OpenVINORuntime, reference, built_by=STAGE)
        return self._tftrt(ctx, name, reference, calibration)

    def _tftrt(self, ctx: StageContext, name: str, reference: Reference,
               calibration: Calibration) -> VariantRecord:
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return skipped(name, TFTRT_NO_GPU, built_by=STAGE)
        baseline = ctx.fetch(variant_key("tf-savedmodel"))
        signature = ctx.spec.model.signature

        def build(artifact: Path) -> dict[str, Any]:
            return convert_tftrt(baseline, signature, name, calibration, artifact)

        return build_variant(ctx, name, build, get_runtime(CATALOG[name].runtime), reference, built_by=STAGE)


def _copy_float(float_onnx: FloatOnnx, artifact: Path) -> dict[str, Any]:
    source, details = float_onnx.get()
    artifact.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, artifact)
    return details


def quantize_onnx(float_onnx: FloatOnnx, calibration: Calibration, inputs: list[TensorInfo],
                  artifact: Path) -> dict[str, Any]:
    """Static QDQ int8: per-channel int8 weights, uint8 activations (on MobileNetV2 with AVX512-VNNI,
    u8 activations ran ~1.6 ms vs ~2.6 ms float; s8 activations were slower than float)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, float_details = float_onnx.get()
    artifact.parent.mkdir(parents=True, exist_ok=True)
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
    feed_names = {name: _onnx_name(name, model_inputs) for name in calibration.names}
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
    )
    return {
        "quantization": "static QDQ int8: per-channel int8 weights, uint8 activations",
        "calibration": calibration.describe(), "calibration_samples": calibration.samples,
        "preprocessed": preprocessed, "opset": float_details.get("opset"),
        "op_count": len(onnx.load(str(artifact), load_external_data=False).graph.node),
    }


def onnx_to_openvino(float_onnx: FloatOnnx, artifact: Path) -> dict[str, Any]:
    """An OpenVINO IR directory. Weights stay f32: save_model would otherwise compress them to f16."""
    import openvino as ov

    source, _ = float_onnx.get()
    artifact.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(source))
    ov.save_model(model, str(artifact / OPENVINO_IR_FILE), compress_to_fp16=False)
    return {"source": "onnx", "openvino": metadata.version("openvino"), "precision": "f32",
            "op_count": len(model.get_ops())}


def convert_tftrt(saved_model: Path, signature: str, variant: str, calibration: Calibration,
                  artifact: Path) -> dict[str, Any]:
    """TF-TRT conversion of the serving signature (needs a GPU and a TensorRT-enabled TensorFlow)."""
    import tensorflow as tf

    trt = tf.experimental.tensorrt
    int8 = variant == "tftrt-int8"
    params = trt.ConversionParams(precision_mode="INT8" if int8 else "FP16", use_calibration=int8)
    converter = trt.Converter(input_saved_model_dir=str(saved_model),
                              input_saved_model_signature_key=signature, conversion_params=params)
    if int8:
        def calibration_input() -> Iterator[dict[str, Any]]:
            for batch in calibration.batches(_CALIBRATION_BATCH):
                yield {bare_name(n): tf.constant(a) for n, a in batch.items()}

        converter.convert(calibration_input_fn=calibration_input)
    else:
        converter.convert()
    converter.save(str(artifact))
    details: dict[str, Any] = {"precision": "INT8" if int8 else "FP16", "tensorflow": tf.__version__}
    if int8:
        details["calibration"] = calibration.describe()
        details["calibration_samples"] = calibration.samples
    return details


def _onnx_name(name: str, model_inputs: list[str]) -> str:
    for candidate in model_inputs:
        if candidate == name or bare_name(candidate) == bare_name(name):
            return candidate
    if len(model_inputs) == 1:
        return model_inputs[0]
    raise ValueError(f"the ONNX model has no input named {name!r}; it has {model_inputs}")
