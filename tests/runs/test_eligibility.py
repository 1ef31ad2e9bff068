"""Which runtime runs a variant on a target, and on which device: a GPU target never measures the CPU."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import optismith.runs.eligibility as eligibility
import optismith.runtimes as runtimes
from optismith import catalog
from optismith.results import VariantRecord
from optismith.runtimes import Runtime
from optismith.spec import ModelOptimizationSpec, TargetSpec

CPU = TargetSpec(name="cpu", kind="cpu")
GPU = TargetSpec(name="h200", kind="gpu")


class CpuOnly(Runtime):
    name = "cpu-only"

    @classmethod
    def availability(cls) -> str | None:
        return None

    @classmethod
    def load(cls, artifact: Any, *, threads: int, options: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError


class Both(CpuOnly):
    name = "both"
    devices: ClassVar[tuple[Any, ...]] = ("cpu", "gpu")
    asked: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    @classmethod
    def availability_on(cls, device: Any, options: dict[str, Any] | None = None) -> str | None:
        cls.asked.append((device, dict(options or {})))
        return None


@pytest.fixture(autouse=True)
def _runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runtimes.RUNTIMES, "cpu-only", f"{__name__}:CpuOnly")
    monkeypatch.setitem(runtimes.RUNTIMES, "both", f"{__name__}:Both")
    monkeypatch.setattr(eligibility, "gpu_visible", lambda: True)
    Both.asked = []


def _record(name: str, runtime: str) -> VariantRecord:
    return VariantRecord(name=name, runtime=runtime, status="built", artifact=f"variants/{name}/x")


def test_cpu_only_runtimes_are_skipped_on_gpu_targets() -> None:
    runtime, why = eligibility.resolve(_record("tflite-fp32", "cpu-only"), GPU)
    assert runtime is None and "computes on the CPU only" in why
    assert eligibility.resolve(_record("tflite-fp32", "cpu-only"), CPU) == (CpuOnly, "")


def test_gpu_variants_never_run_on_cpu_targets() -> None:
    runtime, why = eligibility.resolve(_record("onnx-cuda-fp16", "both"), CPU)
    assert runtime is None and "CPU target" in why
    runtime, why = eligibility.resolve(_record("onnx-cuda-fp16", "both"), None)
    assert runtime is None and "no GPU target" in why


def test_the_runtime_is_asked_about_the_gpu_with_the_variants_options() -> None:
    assert eligibility.resolve(_record("onnx-cuda-fp16", "both"), GPU) == (Both, "")
    device, options = Both.asked[-1]
    assert device == "gpu" and options == dict(catalog.get("onnx-cuda-fp16").runtime_options)


def test_no_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eligibility, "gpu_visible", lambda: False)
    runtime, why = eligibility.resolve(_record("onnx-fp32", "both"), GPU)
    assert runtime is None and "no GPU is visible" in why


def test_load_options_carry_the_targets_device() -> None:
    spec = ModelOptimizationSpec.model_validate({"model": {"uri": "/m"}, "output": {"uri": "/o"}})
    entry = catalog.get("onnx-cuda-fp32")
    on_gpu = eligibility.load_options(entry, spec, GPU)
    assert on_gpu["device"] == "gpu" and on_gpu["cuda.use_tf32"] == "0" and on_gpu["io"] == "device"
    assert eligibility.load_options(entry, spec, CPU)["device"] == "cpu"
    assert eligibility.load_options(catalog.get("onnx-fp32"), spec)["device"] == "cpu"


@pytest.mark.parametrize(("flags", "skipped"), [
    ("avx2 avx512f avx512bw", {"openvino-bf16": "bf16 needs AVX512_BF16 or AMX_BF16",
                               "openvino-int8": "int8 needs AVX512_VNNI or AVX_VNNI or AMX_INT8"}),
    ("avx2 avx512f avx512_vnni avx512_bf16", {}),
])
def test_reduced_precisions_run_only_where_the_measuring_cpu_has_their_features(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, flags: str, skipped: dict[str, str]) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(eligibility.cpu_features, "CPUINFO", cpuinfo)  # the node that measures
    for name in ("openvino-fp32", "openvino-bf16", "openvino-int8"):
        runtime, why = eligibility.resolve(_record(name, "cpu-only"), CPU)
        if name in skipped:
            assert runtime is None and why.startswith(skipped[name]) and "this CPU has" in why, why
        else:
            assert (runtime, why) == (CpuOnly, "")
