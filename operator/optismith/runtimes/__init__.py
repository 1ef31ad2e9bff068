"""Runtimes behind one small interface (optismith.runtimes.base), registered by name as data.

The registry maps a runtime's name (what the variant catalog's `runtime` says) to the class's module
path; a runtime's module is imported when the runtime is first asked for, so importing this package stays
cheap, and heavy imports (TensorFlow, LiteRT, ONNX Runtime, OpenVINO) happen inside each runtime's methods.
"""

from __future__ import annotations

from optismith import lazy
from optismith.runtimes.base import IOSpec, Runtime, Session

RUNTIMES: dict[str, str] = {
    "tf-savedmodel": "optismith.runtimes.tf:SavedModelRuntime",
    "tf-graphdef": "optismith.runtimes.tf:GraphDefRuntime",
    "tf-xla": "optismith.runtimes.tf:XlaRuntime",
    "tflite": "optismith.runtimes.tflite:TFLiteRuntime",
    "onnxruntime": "optismith.runtimes.onnx:OnnxRuntime",
    "openvino": "optismith.runtimes.openvino:OpenVINORuntime",
}


def get_runtime(name: str) -> type[Runtime]:
    try:
        path = RUNTIMES[name]
    except KeyError:
        raise KeyError(f"unknown runtime {name!r}; known: {sorted(RUNTIMES)}") from None
    runtime: type[Runtime] = lazy.load(path)
    return runtime


def all_runtimes() -> dict[str, type[Runtime]]:
    return {name: get_runtime(name) for name in RUNTIMES}


__all__ = ["RUNTIMES", "IOSpec", "Runtime", "Session", "all_runtimes", "get_runtime"]
