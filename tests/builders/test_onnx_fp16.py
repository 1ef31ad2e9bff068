"""The float16 ONNX variant's conversion (no TensorFlow: a hand-built convolutional model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.builders.onnx import to_float16
from optismith.runtimes.onnx import OnnxRuntime

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(8, 3, 3, 3)).astype(np.float32) * 0.3
DENSE = RNG.normal(size=(8, 10)).astype(np.float32)


def write_conv_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),  # tf2onnx's NHWC input
            helper.make_node("Conv", ["nchw", "K"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["relu"]),
            helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "D"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 16, 16, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(KERNEL, "K"), numpy_helper.from_array(DENSE, "D")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_float16_keeps_float32_io_and_close_outputs(tmp_path: Path) -> None:
    import onnx

    source = write_conv_onnx(tmp_path / "fp32.onnx")
    details = to_float16(source, {"opset": 17}, tmp_path / "fp16.onnx")
    assert details["opset"] == 17 and "float16" in details["precision"] and details["op_count"] > 7
    model = onnx.load(str(tmp_path / "fp16.onnx"))
    weights = {t.name: t.data_type for t in model.graph.initializer}
    assert set(weights.values()) == {onnx.TensorProto.FLOAT16}  # weights are fp16 ...
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # ... the I/O is not
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = RNG.random((4, 16, 16, 3)).astype(np.float32)
    (full,) = OnnxRuntime.load(source, threads=1).run([x])
    (half,) = OnnxRuntime.load(tmp_path / "fp16.onnx", threads=1).run([x])
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, full, atol=5e-3)
    assert not np.array_equal(half, full)  # it really computed in fp16


@pytest.mark.parametrize("name", ["onnx-cuda-fp16", "onnx-cuda-fp16-fused"])
def test_fp16_variants_use_the_float16_builder(name: str) -> None:
    from optismith import catalog

    entry = catalog.get(name)
    assert entry.gpu and entry.options["quantization"] == "float16"
    assert entry.runtime_options["io"] == "device" and entry.runtime_options["cuda.enable_cuda_graph"] == "1"
