"""The benchmark stage on a GPU target, with fake runtimes: the reference when TensorFlow cannot use the GPU,
CPU-only runtimes skipped, device-resident and end-to-end latency, a memory-bounded batch sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

import optismith.runs.eligibility as eligibility
from optismith.errors import StageError
from optismith.results import VariantBenchmark
from optismith.stages.benchmark import BenchmarkStage
from optismith.stages.benchmark.device import GPU_REFERENCE
from tests.stages.fake_runtimes import FAKE_GPU, FakeGpuRuntime, fake_variant, install_fakes, make_run, manifest

GPU_TARGET = [{"name": "h200", "kind": "gpu"}]


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)
    monkeypatch.setattr(eligibility, "gpu_visible", lambda: True)


def _by_name(benchmarks: list[VariantBenchmark]) -> dict[str, VariantBenchmark]:
    return {b.variant: b for b in benchmarks}


def _host_bound(variant: tuple) -> tuple:  # type: ignore[type-arg]
    record, config = variant
    return record, {**config, "device_resident": False}


def _gpu_run(tmp_path: Path, variants: list, **benchmark: object):  # type: ignore[no-untyped-def,type-arg]
    model = manifest(tmp_path, targets=GPU_TARGET, benchmark={"timeBudget": "1s", **benchmark})
    return make_run(tmp_path, variants, model=model, target="h200")


def test_without_a_gpu_tensorflow_the_reference_is_onnx_runtime_cuda_defaults(tmp_path: Path) -> None:
    ctx = _gpu_run(tmp_path, [
        fake_variant("tf-savedmodel", units=3),  # fake-cpu: computes on the CPU only, like a CPU TensorFlow
        _host_bound(fake_variant(GPU_REFERENCE, units=3, runtime=FAKE_GPU)),
        fake_variant("onnx-cuda-fp16", units=1, runtime=FAKE_GPU, copy_units=2),
        fake_variant("tflite-fp32", units=1),
    ], batchSizes=[1])
    record = BenchmarkStage().run(ctx)
    results = _by_name(record.benchmarks)
    assert results["tf-savedmodel"].status == "skipped"
    assert "CPU only" in results["tf-savedmodel"].reason
    assert results["tflite-fp32"].status == "skipped" and "CPU only" in results["tflite-fp32"].reason
    reference = results[GPU_REFERENCE]
    assert reference.status == "built" and all(c.speedup == 1.0 for c in reference.configs)
    assert reference.best_by_batch["1"].host_latency is None  # host-bound: its latency is already end to end
    note = record.payload["reference"]
    assert note["variant"] == GPU_REFERENCE and "CUDA" in note["why"] and "host-bound" in note["why"]
    assert "against onnx-fp32" in record.message

    fast = results["onnx-cuda-fp16"]
    assert fast.status == "built", fast.reason
    config = fast.best_by_batch["1"]
    assert 2.0 <= config.speedup <= 4.5, config  # device-resident: a third of the reference's work
    assert config.host_latency is not None  # end to end, copies included: measurably slower
    assert config.host_latency.p50_ms > 1.5 * config.latency.p50_ms
    assert fast.execution == {"providers": ["FakeCUDAExecutionProvider"], "io": "device"}
    # Every session of the target was loaded for the GPU, on one CPU thread (no thread sweep on a GPU).
    assert {o["device"] for o in FakeGpuRuntime.options_seen} == {"gpu"}
    assert record.payload["plan"]["threads"] == [1]
    assert "gpu" in record.payload["environment"]


def test_a_batch_that_runs_out_of_device_memory_ends_the_sweep(tmp_path: Path) -> None:
    ctx = _gpu_run(tmp_path, [
        fake_variant("tf-savedmodel"),
        _host_bound(fake_variant(GPU_REFERENCE, units=2, runtime=FAKE_GPU)),
        fake_variant("onnx-cuda-fp16", units=1, runtime=FAKE_GPU, oom_batches=(4,)),
    ], batchSizes=[1, 4, 8])
    fast = _by_name(BenchmarkStage().run(ctx).benchmarks)["onnx-cuda-fp16"]
    assert fast.status == "built"
    assert sorted(fast.best_by_batch) == ["1"]
    assert "out of memory" in fast.reason
    assert "batch 8: not measured (batch 4 ran out of device memory)" in fast.reason


def test_a_gpu_target_never_falls_back_to_a_cpu_reference(tmp_path: Path) -> None:
    ctx = _gpu_run(tmp_path, [fake_variant("tf-savedmodel"), fake_variant(GPU_REFERENCE)])  # both CPU-only
    with pytest.raises(StageError, match="nothing to measure against on this GPU"):
        BenchmarkStage().run(ctx)


def test_no_visible_gpu_skips_everything_with_that_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eligibility, "gpu_visible", lambda: False)
    ctx = _gpu_run(tmp_path, [fake_variant("tf-savedmodel", runtime=FAKE_GPU),
                              fake_variant(GPU_REFERENCE, runtime=FAKE_GPU)])
    with pytest.raises(StageError, match="no GPU is visible"):
        BenchmarkStage().run(ctx)


def test_a_gpu_tensorflow_stays_the_baseline(tmp_path: Path) -> None:
    ctx = _gpu_run(tmp_path, [
        _host_bound(fake_variant("tf-savedmodel", units=2, runtime=FAKE_GPU)),
        _host_bound(fake_variant(GPU_REFERENCE, units=2, runtime=FAKE_GPU)),
    ], batchSizes=[1])
    record = BenchmarkStage().run(ctx)
    results = _by_name(record.benchmarks)
    assert record.payload["reference"]["variant"] == "tf-savedmodel"
    assert results["tf-savedmodel"].status == "built"
    assert results[GPU_REFERENCE].status == "built" and results[GPU_REFERENCE].best_by_batch["1"].speedup > 0
