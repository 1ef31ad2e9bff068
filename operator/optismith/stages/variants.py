"""What each variant is, as data: which runtime runs it, which stage builds it, what it needs."""

from __future__ import annotations

from dataclasses import dataclass

from optismith.spec import VariantName


@dataclass(frozen=True)
class VariantInfo:
    name: VariantName
    runtime: str  # key in optismith.runtimes
    built_by: str  # stage name
    artifact: str  # file or directory name under variants/<name>/
    needs_calibration: bool = False
    needs_gpu: bool = False
    description: str = ""


CATALOG: dict[str, VariantInfo] = {
    v.name: v
    for v in [
        VariantInfo("tf-savedmodel", "tf-savedmodel", "inspect", "saved_model",
                    description="The source as TF Serving serves it: SavedModel signature, graph mode."),
        VariantInfo("tf-frozen", "tf-graphdef", "freeze", "frozen.pb",
                    description="Variables folded into constants."),
        VariantInfo("tf-grappler", "tf-graphdef", "optimize", "optimized.pb",
                    description="Frozen graph after offline Grappler passes."),
        VariantInfo("tf-xla", "tf-xla", "optimize", "saved_model",
                    description="XLA jit_compile of the serving function (opt-in)."),
        VariantInfo("tflite-fp32", "tflite", "quantize", "model.tflite", description="TFLite, float32."),
        VariantInfo("tflite-fp16", "tflite", "quantize", "model.tflite", description="TFLite, float16 weights."),
        VariantInfo("tflite-dynamic-int8", "tflite", "quantize", "model.tflite",
                    description="TFLite, int8 weights, dynamic-range activations."),
        VariantInfo("tflite-int8", "tflite", "quantize", "model.tflite", needs_calibration=True,
                    description="TFLite, full int8 with float input/output."),
        VariantInfo("tflite-int8-io", "tflite", "quantize", "model.tflite", needs_calibration=True,
                    description="TFLite, full int8 with int8 input/output."),
        VariantInfo("onnx-fp32", "onnxruntime", "convert", "model.onnx", description="ONNX Runtime, float32."),
        VariantInfo("onnx-int8", "onnxruntime", "convert", "model.onnx", needs_calibration=True,
                    description="ONNX Runtime, static QDQ per-channel int8."),
        # A directory: the IR is model.xml plus model.bin, and both must travel together.
        VariantInfo("openvino-fp32", "openvino", "convert", "ir",
                    description="OpenVINO IR (model.xml + model.bin), float32."),
        VariantInfo("tftrt-fp16", "tf-savedmodel", "convert", "saved_model", needs_gpu=True,
                    description="TF-TRT, float16 (GPU targets)."),
        VariantInfo("tftrt-int8", "tf-savedmodel", "convert", "saved_model", needs_gpu=True,
                    needs_calibration=True, description="TF-TRT, int8 (GPU targets)."),
    ]
}


def variant_key(name: str) -> str:
    return f"variants/{name}/{CATALOG[name].artifact}"
