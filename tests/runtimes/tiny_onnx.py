"""A tiny ONNX model built by hand (no TensorFlow): y = relu(x @ W + b), x: [N, 4] float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def expected(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.maximum(x @ WEIGHTS + BIAS, 0.0)
    return result


def write_tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["pre"]),
            helper.make_node("Relu", ["pre"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
