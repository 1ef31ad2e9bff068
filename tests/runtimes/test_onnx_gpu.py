"""ONNX Runtime's CUDA provider on a real GPU (`pytest -m gpu`; skipped with the reason where there is none):
every GPU variant computes on CUDA, device-resident and end-to-end calls agree, CUDA graphs replay fresh
inputs, a node without a CUDA kernel fails the session instead of running on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith import catalog
from optismith.builders.onnx import to_float16
from optismith.measure.gpu import GpuMemory, describe_gpus
from optismith.runtimes.onnx import OnnxRuntime
from optismith.runtimes.onnx_cuda import CUDA_EP, CudaSession, GpuPlacementError, gpu_unavailable, node_placement
from tests.builders.test_onnx_fp16 import write_conv_onnx

pytestmark = pytest.mark.gpu
GPU_VARIANTS = ["onnx-fp32", "onnx-cuda-fp32", "onnx-cuda-tf32", "onnx-cuda-fp16", "onnx-cuda-fp16-fused"]
TOLERANCE = {"onnx-fp32": 2e-3, "onnx-cuda-fp32": 1e-5, "onnx-cuda-tf32": 2e-3, "onnx-cuda-fp16": 5e-3,
             "onnx-cuda-fp16-fused": 5e-3}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx-gpu")
    fp32 = write_conv_onnx(folder / "fp32.onnx")
    to_float16(fp32, {}, folder / "fp16.onnx")
    return {"none": fp32, "float16": folder / "fp16.onnx"}


def _options(name: str) -> dict[str, str]:
    return {**catalog.get(name).runtime_options, "device": "gpu"}


def _artifact(models: dict[str, Path], name: str) -> Path:
    return models[catalog.get(name).options["quantization"]]


def _cpu_reference(models: dict[str, Path], x: np.ndarray) -> np.ndarray:
    return OnnxRuntime.load(models["none"], threads=1).run([x])[0]


@pytest.mark.parametrize("name", GPU_VARIANTS)
def test_every_gpu_variant_computes_on_cuda(models: dict[str, Path], name: str) -> None:
    x = np.random.default_rng(0).random((8, 16, 16, 3)).astype(np.float32)
    session = OnnxRuntime.load(_artifact(models, name), threads=1, options=_options(name))
    try:
        assert session.execution()["providers"][0] == CUDA_EP
        (y,) = session.run([x])  # end to end
        np.testing.assert_allclose(y, _cpu_reference(models, x), atol=TOLERANCE[name])
        call = session.bind([x])  # device-resident
        call()
        call()
        if session.device_resident:
            (again,) = session.run([x])
            np.testing.assert_array_equal(again, y)
    finally:
        session.close()
    counts = node_placement(_artifact(models, name), _options(name), {"image": x})
    assert set(counts) == {CUDA_EP}, counts


def test_a_cuda_graph_replays_fresh_inputs(models: dict[str, Path]) -> None:
    rng = np.random.default_rng(1)
    graph = CudaSession(models["none"], 1, _options("onnx-cuda-fp32"))
    plain = CudaSession(models["none"], 1, {"io": "device", "cuda.use_tf32": "0"})
    try:
        for _ in range(4):
            x = rng.random((2, 16, 16, 3)).astype(np.float32)
            (from_graph,) = graph.run([x])
            (expected,) = plain.run([x])
            np.testing.assert_allclose(from_graph, expected, rtol=1e-4, atol=1e-6)  # NHWC vs NCHW sums
        first = graph.run([np.zeros((2, 16, 16, 3), np.float32)])[0]
        assert not np.allclose(first, graph.run([np.ones((2, 16, 16, 3), np.float32)])[0])
        assert graph.execution()["cuda_options"]["enable_cuda_graph"] == "1"
        assert graph.execution()["cuda_options"]["use_tf32"] == "0"
    finally:
        graph.close()
        plain.close()


def test_a_node_without_a_cuda_kernel_fails_instead_of_running_on_the_cpu(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("StringNormalizer", ["text"], ["normalized"], case_change_action="LOWER"),
         helper.make_node("Relu", ["x"], ["y"])],
        "mixed",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("normalized", TensorProto.STRING, [None]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "mixed.onnx"))
    with pytest.raises(GpuPlacementError, match="would run on the CPU"):
        OnnxRuntime.load(tmp_path / "mixed.onnx", threads=1, options={"device": "gpu"})


def test_tensorrt_is_used_only_where_it_can_load() -> None:
    reason = gpu_unavailable({"ep": "tensorrt"})
    assert reason is None or "libnvinfer" in reason or "built without" in reason
    assert gpu_unavailable({}) is None


def test_the_gpu_is_described_and_its_memory_read() -> None:
    described = describe_gpus()
    assert described.get("gpus") and described["gpus"][0]["name"], described
    assert described.get("cuda_driver")
    memory = GpuMemory()
    used = memory.used_bytes()
    assert memory.available and used is not None and used > 0, memory.problem
