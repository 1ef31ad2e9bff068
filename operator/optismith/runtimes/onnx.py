"""ONNX models through ONNX Runtime's CPU execution provider, with every graph optimization on."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from optismith.runtimes.base import IOSpec, Runtime, Session

# ONNX Runtime reports element types as strings like "tensor(float)".
_ONNX_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(uint32)": "uint32",
    "tensor(int64)": "int64",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


class OnnxSession(Session):
    def __init__(self, artifact: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One inference at a time: parallelism across independent nodes only adds contention.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        self.inputs = [_io_spec(node) for node in self._session.get_inputs()]
        self.outputs = [_io_spec(node) for node in self._session.get_outputs()]
        self._input_names = [spec.name for spec in self.inputs]
        self._output_names = [spec.name for spec in self.outputs]
        self._dtypes = [np.dtype(spec.dtype) for spec in self.inputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._input_names):
            raise ValueError(f"expected {len(self._input_names)} inputs {self._input_names}, got {len(feeds)}")
        named = {
            name: np.ascontiguousarray(feed, dtype=dtype)
            for name, feed, dtype in zip(self._input_names, feeds, self._dtypes, strict=True)
        }
        return list(self._session.run(self._output_names, named))


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    @classmethod
    def availability(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime not installed: pip install 'optismith[onnx]'"
        return None

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        return OnnxSession(Path(artifact), threads)

    @classmethod
    def versions(cls) -> dict[str, str]:
        found = {}
        for package in ("onnxruntime", "onnx"):
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        return found


def _io_spec(node: Any) -> IOSpec:
    dtype = _ONNX_TO_NUMPY.get(node.type)
    if dtype is None:
        raise ValueError(f"unsupported ONNX element type {node.type} of {node.name!r}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return IOSpec(name=node.name, dtype=dtype, shape=shape)
