"""The evaluate stage on a GPU target whose image has no TensorFlow: where the reference outputs come from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import optismith.runs.eligibility as eligibility
from optismith.results import SourceInfo, StageRecord, TensorInfo
from optismith.runs.layout import SAMPLE_INPUTS, SAMPLE_OUTPUTS, stage_record
from optismith.stages.evaluate import EvaluateStage
from tests.stages.fake_runtimes import FAKE_GPU, FakeGpuRuntime, fake_variant, install_fakes, make_run, manifest

GPU_TARGET = [{"name": "h200", "kind": "gpu"}]


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)
    monkeypatch.setattr(eligibility, "gpu_visible", lambda: True)


def _variants() -> list:  # type: ignore[type-arg]
    return [fake_variant("tf-savedmodel"),  # CPU-only fake: TensorFlow that cannot use the GPU
            fake_variant("onnx-fp32", runtime=FAKE_GPU),
            fake_variant("onnx-cuda-fp16", runtime=FAKE_GPU, noise=3.0)]


def test_without_an_evaluation_uri_the_recorded_tensorflow_outputs_are_the_reference(tmp_path: Path) -> None:
    ctx = make_run(tmp_path, _variants(), model=manifest(tmp_path, targets=GPU_TARGET), target="h200")
    inputs = ctx.read_arrays(SAMPLE_INPUTS)
    assert inputs is not None
    # What inspect recorded: here, the exact outputs of the fake model (noise 0) on the samples.
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps(fake_variant("probe")[1]))
    recorded = FakeGpuRuntime.load(probe, threads=1).run([inputs["image"]])[0]
    ctx.write_arrays(SAMPLE_OUTPUTS, {"probabilities": recorded})
    FakeGpuRuntime.options_seen = []
    record = EvaluateStage().run(ctx)
    results = {a.variant: a for a in record.accuracy}
    assert record.payload["reference"]["variant"] == "tf-savedmodel"
    assert "recorded by inspect" in record.payload["reference"]["source"]
    assert results["tf-savedmodel"].value == 1.0
    assert results["onnx-fp32"].value == 1.0  # the same function as the recorded reference
    assert results["onnx-cuda-fp16"].value < 1.0 and results["onnx-cuda-fp16"].drop > 0
    assert {o["device"] for o in FakeGpuRuntime.options_seen} == {"gpu"}


def test_with_an_evaluation_uri_the_reference_is_onnx_fp32_in_strict_fp32_on_the_gpu(tmp_path: Path) -> None:
    x = np.random.default_rng(5).random((40, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x)
    model = manifest(tmp_path, targets=GPU_TARGET, evaluation={"uri": str(tmp_path / "eval.npz")})
    ctx = make_run(tmp_path, _variants(), model=model, target="h200")
    # The model's inputs come from the inspect record (the baseline cannot be loaded here to ask it).
    inspect = StageRecord.model_validate_json(ctx.store.read_bytes(stage_record("inspect")))
    source = SourceInfo(format="saved_model", uri="/m", signature="serving_default", op_histogram={}, op_count=0,
                        inputs=[TensorInfo(name="image", dtype="float32", shape=[None, 8, 8, 1])],
                        outputs=[TensorInfo(name="probabilities", dtype="float32", shape=[None, 10])],
                        parameter_count=0, flops_per_sample=None, size_bytes=0)
    inspect = inspect.model_copy(update={"payload": {"source": source.model_dump()}})
    ctx.store.write_bytes(stage_record("inspect"), inspect.model_dump_json().encode())
    record = EvaluateStage().run(ctx)
    note = record.payload["reference"]
    assert note["variant"].startswith("onnx-fp32") and "strict fp32" in note["variant"]
    assert "tf-savedmodel" in record.payload["skipped"]
    strict = [o for o in FakeGpuRuntime.options_seen if o.get("cuda.use_tf32") == "0"]
    assert len(strict) == 1 and strict[0]["device"] == "gpu"  # the reference: one load, TF32 off
    results = {a.variant: a for a in record.accuracy}
    assert "tf-savedmodel" not in results
    assert results["onnx-fp32"].value == 1.0 and results["onnx-cuda-fp16"].value < 1.0
