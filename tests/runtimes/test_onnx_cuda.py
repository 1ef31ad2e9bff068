"""ONNX Runtime on a GPU, on a machine without one: provider selection and the refused CPU fallback against a
fake onnxruntime, and the IO-binding / per-batch-session code paths with the CPU provider standing in."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.runtimes import onnx_cuda
from optismith.runtimes.base import out_of_device_memory
from optismith.runtimes.onnx import OnnxRuntime
from optismith.runtimes.onnx_cuda import (
    CUDA_EP,
    DISABLE_CPU_FALLBACK,
    TENSORRT_EP,
    CudaSession,
    GpuPlacementError,
    Placement,
    create_session,
    gpu_unavailable,
    node_placement,
    providers_for,
)
from tests.runtimes.tiny_onnx import expected, write_tiny_onnx

CPU_STAND_IN = Placement(device_type="cpu", provider="CPUExecutionProvider", strict=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_onnx(tmp_path_factory.mktemp("onnx-cuda") / "tiny.onnx")


class _FakeOptions:
    def __init__(self) -> None:
        self.entries: dict[str, str] = {}
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = None
        self.graph_optimization_level = None

    def add_session_config_entry(self, key: str, value: str) -> None:
        self.entries[key] = value


def fake_onnxruntime(monkeypatch: pytest.MonkeyPatch, *, available: list[str], registers: list[str] | None = None,
                     raises: str | None = None) -> list[dict[str, Any]]:
    """An `onnxruntime` module whose sessions register `registers` (or raise `raises`); returns the calls."""
    calls: list[dict[str, Any]] = []

    class InferenceSession:
        def __init__(self, path: str, options: _FakeOptions, providers: Any = None, **kwargs: Any) -> None:
            calls.append({"providers": providers, "entries": dict(options.entries), **kwargs})
            if raises:
                raise RuntimeError(raises)

        def get_providers(self) -> list[str]:
            return registers or []

    module = types.SimpleNamespace(
        __version__="9.9.9", get_available_providers=lambda: available, InferenceSession=InferenceSession,
        SessionOptions=_FakeOptions, ExecutionMode=types.SimpleNamespace(ORT_SEQUENTIAL=0),
        GraphOptimizationLevel=types.SimpleNamespace(ORT_ENABLE_ALL=99),
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", module)
    return calls


def test_a_cpu_only_onnxruntime_cannot_serve_a_gpu_target(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_onnxruntime(monkeypatch, available=["AzureExecutionProvider", "CPUExecutionProvider"])
    reason = gpu_unavailable({})
    assert reason is not None and "no CUDAExecutionProvider" in reason and "optismith[onnx-gpu]" in reason
    assert OnnxRuntime.availability_on("gpu", {}) == reason
    assert OnnxRuntime.availability_on("cpu", {}) is None


def test_tensorrt_without_libnvinfer_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_onnxruntime(monkeypatch, available=[TENSORRT_EP, CUDA_EP, "CPUExecutionProvider"])
    monkeypatch.setattr(onnx_cuda, "TENSORRT_LIBRARY", "libnvinfer-not-here.so.10")
    assert gpu_unavailable({}) is None  # the CUDA variants can run
    reason = gpu_unavailable({"ep": "tensorrt"})
    assert reason is not None and "libnvinfer-not-here.so.10" in reason
    fake_onnxruntime(monkeypatch, available=[CUDA_EP, "CPUExecutionProvider"])
    assert "built without TensorrtExecutionProvider" in (gpu_unavailable({"ep": "tensorrt"}) or "")


def test_provider_options_pass_through_verbatim() -> None:
    options = {"io": "device", "cuda.use_tf32": "0", "cuda.prefer_nhwc": "1", "cuda.enable_cuda_graph": "1"}
    assert providers_for(options) == [(CUDA_EP, {"use_tf32": "0", "prefer_nhwc": "1", "enable_cuda_graph": "1"})]
    assert providers_for(options, cuda_graph=False)[0][1]["enable_cuda_graph"] == "0"
    trt = providers_for({"ep": "tensorrt", "tensorrt.trt_fp16_enable": "1", "cuda.use_tf32": "0"})
    assert trt == [(TENSORRT_EP, {"trt_fp16_enable": "1"}), (CUDA_EP, {"use_tf32": "0"})]


def test_sessions_refuse_cpu_fallback_and_onnxruntimes_cpu_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_onnxruntime(monkeypatch, available=[CUDA_EP, "CPUExecutionProvider"],
                             registers=[CUDA_EP, "CPUExecutionProvider"])
    create_session(Path("m.onnx"), 1, providers_for({}))
    assert calls[0]["entries"][DISABLE_CPU_FALLBACK] == "1"
    assert calls[0]["enable_fallback"] == 0  # ONNX Runtime's Python retry on the CPU after an EP error is off
    assert calls[0]["providers"] == [(CUDA_EP, {})]


def test_a_session_partly_on_the_cpu_is_a_placement_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_onnxruntime(monkeypatch, available=[CUDA_EP], raises=(
        "This session contains graph nodes that are assigned to the default CPU EP, but fallback to CPU EP has "
        "been explicitly disabled by the user."))
    with pytest.raises(GpuPlacementError, match="would run on the CPU"):
        create_session(Path("m.onnx"), 1, providers_for({}))


def test_a_session_whose_cuda_provider_did_not_register_is_a_placement_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_onnxruntime(monkeypatch, available=[CUDA_EP], registers=["CPUExecutionProvider"])
    with pytest.raises(GpuPlacementError, match=r"\['CUDAExecutionProvider'\] did not register"):
        create_session(Path("m.onnx"), 1, providers_for({}))


def test_load_on_a_gpu_target_goes_to_the_cuda_session(monkeypatch: pytest.MonkeyPatch, model: Path) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(onnx_cuda, "load_on_gpu", lambda artifact, threads, options: seen.append(options) or "gpu")
    assert OnnxRuntime.load(model, threads=1, options={"device": "gpu", "io": "device"}) == "gpu"
    assert seen == [{"device": "gpu", "io": "device"}]
    cpu = OnnxRuntime.load(model, threads=1, options={"device": "cpu", "io": "device"})
    assert cpu.execution() == {"providers": ["CPUExecutionProvider"]}


def test_device_resident_calls_reuse_one_buffer_per_batch(model: Path) -> None:
    session = CudaSession(model, 1, {"io": "device"}, CPU_STAND_IN)
    assert session.device_resident
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    first = x.copy()
    call = session.bind([x[:2]])
    call()
    slot = session._slots[2]
    address = slot.inputs[0].data_ptr()
    np.testing.assert_allclose(slot.fetch()[0], expected(x[:2]), rtol=1e-5, atol=1e-6)
    # New data for the same batch size goes into the same buffer (what a captured CUDA graph reads).
    (y,) = session.run([x[2:4]])
    np.testing.assert_array_equal(x, first)  # staging new inputs did not write into the earlier ones' array
    assert session._slots[2].inputs[0].data_ptr() == address
    np.testing.assert_allclose(y, expected(x[2:4]), rtol=1e-5, atol=1e-6)
    (y8,) = session.run([x])
    np.testing.assert_allclose(y8, expected(x), rtol=1e-5, atol=1e-6)
    original = x.copy()
    session.run([x[4:6]])  # results already returned are the caller's: a later call does not overwrite them
    np.testing.assert_allclose(y, expected(x[2:4]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, original)  # nor are the caller's inputs ever written to
    assert sorted(session._slots) == [2, 8] and len(session._sessions) == 1  # no graph: one session
    session.close()


def test_cuda_graph_variants_get_one_session_per_batch_size(model: Path) -> None:
    session = CudaSession(model, 1, {"io": "device", "cuda.enable_cuda_graph": "1"}, CPU_STAND_IN)
    x = np.random.default_rng(2).normal(size=(8, 4)).astype(np.float32)
    for batch in (1, 8, 1):
        (y,) = session.run([x[:batch]])
        np.testing.assert_allclose(y, expected(x[:batch]), rtol=1e-5, atol=1e-6)
    assert len(session._sessions) == 2 and session._slots[1].session is not session._slots[8].session
    with pytest.raises(ValueError, match="needs io=device"):
        CudaSession(model, 1, {"cuda.enable_cuda_graph": "1"}, CPU_STAND_IN)


def test_host_bound_sessions_run_numpy_in_and_out(model: Path) -> None:
    session = CudaSession(model, 1, {}, CPU_STAND_IN)
    assert not session.device_resident and session.io == "host"
    x = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    (y,) = session.run([x])
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    described = session.execution()
    assert described["providers"] == ["CPUExecutionProvider"] and described["io"] == "host"


def test_node_placement_counts_kernels_per_provider(model: Path) -> None:
    x = np.ones((2, 4), dtype=np.float32)
    counts = node_placement(model, {}, {"x": x}, CPU_STAND_IN)
    assert set(counts) == {"CPUExecutionProvider"} and sum(counts.values()) >= 1


@pytest.mark.parametrize(("text", "oom"), [
    ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory", True),
    ("Failed to allocate memory for requested buffer of size 1073741824", True),
    ("ResourceExhaustedError: OOM when allocating tensor", True),
    ("Invalid rank for input: x Got: 3 Expected: 2", False),
])
def test_out_of_device_memory_is_recognised(text: str, oom: bool) -> None:
    assert out_of_device_memory(RuntimeError(text)) is oom


def test_outputs_are_bound_before_the_first_run_when_their_shape_is_known() -> None:
    from optismith.runtimes.onnx_cuda import static_shape

    assert static_shape((None, 10), 64) == [64, 10]
    assert static_shape((8, 10), 64) == [8, 10]  # a fixed batch stays what the model says
    assert static_shape((None, None), 64) is None  # learnt from a first run (never with a CUDA graph)


def test_dynamic_output_shapes_work_without_a_graph_and_are_refused_with_one(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "m"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    x = np.array([[-1.0, 2.0, -3.0]], dtype=np.float32)
    (y,) = CudaSession(tmp_path / "dyn.onnx", 1, {"io": "device"}, CPU_STAND_IN).run([x])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    graph_session = CudaSession(tmp_path / "dyn.onnx", 1, {"io": "device", "cuda.enable_cuda_graph": "1"},
                                CPU_STAND_IN)
    with pytest.raises(ValueError, match="output shapes known up to the batch size"):
        graph_session.run([x])
