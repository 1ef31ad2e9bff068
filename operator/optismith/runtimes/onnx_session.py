"""An ONNX Runtime session fed and fetched with host arrays, and the session options every session shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optismith.runtimes.base import IOSpec, Session

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


def session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One inference at a time: parallelism across independent nodes only adds contention.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxSession(Session):
    """A session fed and fetched with host arrays (the CPU EP; on a GPU, the host-bound way to run)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.inputs = [_io_spec(node) for node in self._session.get_inputs()]
        self.outputs = [_io_spec(node) for node in self._session.get_outputs()]
        self._input_names = [spec.name for spec in self.inputs]
        self._output_names = [spec.name for spec in self.outputs]
        self._dtypes = [np.dtype(spec.dtype) for spec in self.inputs]

    @classmethod
    def on_cpu(cls, artifact: Path, threads: int) -> OnnxSession:
        import onnxruntime as ort

        return cls(ort.InferenceSession(str(artifact), session_options(threads), providers=["CPUExecutionProvider"]))

    def named_feeds(self, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
        if len(feeds) != len(self._input_names):
            raise ValueError(f"expected {len(self._input_names)} inputs {self._input_names}, got {len(feeds)}")
        return {
            name: np.ascontiguousarray(feed, dtype=dtype)
            for name, feed, dtype in zip(self._input_names, feeds, self._dtypes, strict=True)
        }

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(self._output_names, self.named_feeds(feeds)))

    def execution(self) -> dict[str, Any]:
        return {"providers": list(self._session.get_providers())}

    def settings(self) -> dict[str, Any]:
        options = self._session.get_session_options()
        return {"intra_op_num_threads": options.intra_op_num_threads,
                "inter_op_num_threads": options.inter_op_num_threads,
                "execution_mode": options.execution_mode.name,
                "graph_optimization_level": options.graph_optimization_level.name}


def _io_spec(node: Any) -> IOSpec:
    dtype = _ONNX_TO_NUMPY.get(node.type)
    if dtype is None:
        raise ValueError(f"unsupported ONNX element type {node.type} of {node.name!r}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return IOSpec(name=node.name, dtype=dtype, shape=shape)
