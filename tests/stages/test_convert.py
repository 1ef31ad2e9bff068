"""The convert stage on the digits model: ONNX float and int8, OpenVINO when installed, TF-TRT skipped
without a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith import catalog
from optismith.builders.reference import NO_CALIBRATION_REASON
from optismith.builders.tftrt import NO_GPU as TFTRT_NO_GPU
from optismith.results import StageRecord
from optismith.runs.layout import variant_artifact
from optismith.runtimes.onnx import OnnxRuntime
from optismith.runtimes.openvino import OpenVINORuntime
from optismith.stages.convert import ConvertStage
from tests.stages.prepared_run import copy_run, make_context, prepare_run

CONVERT_VARIANTS = [v.name for v in catalog.built_by("convert")]

pytestmark = [pytest.mark.tf]


@pytest.fixture(scope="module")
def prepared(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_run(digits_dir, tmp_path_factory.mktemp("convert") / "run")


@pytest.fixture(scope="module")
def converted(prepared: Path, digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[StageRecord, Path]:
    root = tmp_path_factory.mktemp("convert-all")
    run = copy_run(prepared, root / "run")
    ctx = make_context(
        run, root / "work", list(CONVERT_VARIANTS), uri=str(digits_dir / "data" / "calibration.npz"), samples=64
    )
    return ConvertStage().run(ctx), run


def test_onnx_fp32_matches_the_source(converted: tuple[StageRecord, Path]) -> None:
    record, run = converted
    variant = {v.name: v for v in record.variants}["onnx-fp32"]
    assert variant.status == "built", variant.reason
    assert variant.runtime == "onnxruntime" and variant.built_by == "convert"
    assert variant.artifact == variant_artifact("onnx-fp32")
    assert variant.size_bytes == (run / variant_artifact("onnx-fp32")).stat().st_size
    assert variant.details["opset"] == 17 and variant.details["converter"].startswith("tf2onnx")
    assert variant.op_count is not None and variant.op_count > 5
    assert variant.numerics is not None and variant.numerics.samples == 32
    assert variant.numerics.relative_error < 1e-4


def test_onnx_model_is_named_like_the_signature(converted: tuple[StageRecord, Path]) -> None:
    _, run = converted
    session = OnnxRuntime.load(run / variant_artifact("onnx-fp32"), threads=1)
    assert [s.name for s in session.inputs] == ["image"]
    assert [s.name for s in session.outputs] == ["output_0"]
    assert session.inputs[0].shape == (None, 8, 8, 1)


def test_onnx_int8_is_static_qdq_and_agrees(converted: tuple[StageRecord, Path], digits_dir: Path) -> None:
    import onnx

    record, run = converted
    variant = {v.name: v for v in record.variants}["onnx-int8"]
    assert variant.status == "built", variant.reason
    assert variant.details["calibration"] == str(digits_dir / "data" / "calibration.npz")
    assert variant.details["calibration_samples"] == 64
    assert variant.numerics is not None and variant.numerics.top1_agreement is not None
    assert variant.numerics.top1_agreement > 0.9
    assert 0 < variant.numerics.relative_error < 0.1
    ops = {node.op_type for node in onnx.load(str(run / variant_artifact("onnx-int8"))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "DynamicQuantizeLinear" not in ops  # dynamic quantization was measured slower than float
    assert record.payload["calibration"] == {
        "source": "file",
        "uri": str(digits_dir / "data" / "calibration.npz"),
        "samples": 64,
    }


def test_tftrt_is_skipped_without_a_gpu_target(converted: tuple[StageRecord, Path]) -> None:
    import tensorflow as tf

    assert tf.config.list_physical_devices("GPU") == []
    record, _ = converted
    by_name = {v.name: v for v in record.variants}
    for name in ("tftrt-fp16", "tftrt-int8"):
        assert by_name[name].status == "skipped"
        # The spec has no GPU target: GPU variants are not even attempted (with one, the builder itself
        # would say TFTRT_NO_GPU where TensorFlow sees no GPU).
        assert by_name[name].reason == "runs only on GPU targets, and spec.targets has none"
        assert TFTRT_NO_GPU.startswith("TF-TRT needs a GPU")
        assert by_name[name].runtime == "tf-savedmodel"


def test_openvino_follows_its_availability(converted: tuple[StageRecord, Path]) -> None:
    record, run = converted
    variant = {v.name: v for v in record.variants}["openvino-fp32"]
    reason = OpenVINORuntime.availability()
    if reason:
        assert variant.status == "skipped" and variant.reason == reason
        assert "openvino not installed" in reason
    else:
        assert variant.status == "built", variant.reason
        ir = run / variant_artifact("openvino-fp32")
        assert (ir / "model.xml").is_file() and (ir / "model.bin").is_file()
        assert variant.numerics is not None and variant.numerics.relative_error < 1e-4


def test_openvino_is_skipped_when_not_installed(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import util

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    run = copy_run(prepared, tmp_path / "run")
    record = ConvertStage().run(make_context(run, tmp_path / "work", ["openvino-fp32"]))
    (variant,) = record.variants
    assert variant.status == "skipped"
    assert variant.reason.startswith("openvino not installed")
    assert not (run / "variants" / "openvino-fp32").exists()


def test_onnx_int8_alone_converts_the_float_model_without_publishing_it(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    record = ConvertStage().run(make_context(run, tmp_path / "work", ["onnx-int8"], synthetic=True, samples=16))
    (variant,) = record.variants
    assert variant.status == "built", variant.reason
    assert variant.details["calibration"] == "synthetic"
    assert record.payload["calibration"]["source"] == "synthetic"
    assert not (run / variant_artifact("onnx-fp32")).exists()


def test_onnx_int8_is_skipped_without_calibration(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    ctx = make_context(run, tmp_path / "work", ["onnx-int8", "tftrt-fp16"], synthetic=True)
    ctx.spec.calibration.synthetic = False
    record = ConvertStage().run(ctx)
    by_name = {v.name: v for v in record.variants}
    assert by_name["onnx-int8"].status == "skipped" and by_name["onnx-int8"].reason == NO_CALIBRATION_REASON


def test_a_failed_float_onnx_fails_every_variant_that_needs_it_not_the_stage(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optismith.builders.onnx as onnx_builder

    calls = []

    def broken(serialized: bytes, io: object, path: Path) -> dict[str, object]:
        calls.append(path)
        raise ValueError("tf2onnx: unsupported op FancyOp")

    monkeypatch.setattr(onnx_builder, "frozen_graph_to_onnx", broken)
    run = copy_run(prepared, tmp_path / "run")
    record = ConvertStage().run(
        make_context(run, tmp_path / "work", ["onnx-fp32", "onnx-int8", "tftrt-fp16"], synthetic=True, samples=8)
    )
    by_name = {v.name: v for v in record.variants}
    assert by_name["onnx-fp32"].status == "failed"
    assert by_name["onnx-fp32"].reason == "ValueError: tf2onnx: unsupported op FancyOp"
    assert by_name["onnx-int8"].status == "failed"
    assert "needs the float ONNX model, whose build failed: ValueError" in by_name["onnx-int8"].reason
    assert len(calls) == 1, "a failed intermediate is not retried for every variant"
    assert by_name["tftrt-fp16"].status == "skipped"
    assert record.message.startswith("built 0 of 3")


def test_without_the_freeze_stages_graph_onnx_starts_from_a_fresh_freeze(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    (run / "variants" / "tf-frozen" / "frozen.pb").unlink()
    record = ConvertStage().run(make_context(run, tmp_path / "work", ["onnx-fp32"], synthetic=True, samples=8))
    (variant,) = record.variants
    assert variant.status == "built" and variant.numerics is not None and variant.numerics.max_abs_error < 1e-4


def test_onnx_fp32_runs_batches_of_1_and_8(converted: tuple[StageRecord, Path]) -> None:
    _, run = converted
    x = np.load(run / "samples" / "inputs.npz")["image"]
    reference = np.load(run / "samples" / "outputs.npz")["output_0"]
    session = OnnxRuntime.load(run / variant_artifact("onnx-fp32"), threads=2)
    for batch in (1, 8, 1):
        (out,) = session.run([x[:batch]])
        assert out.shape == (batch, 10)
        np.testing.assert_allclose(out, reference[:batch], atol=1e-5)
