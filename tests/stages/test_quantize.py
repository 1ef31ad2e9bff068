"""The quantize stage on the digits model: every TFLite variant builds and stays close to the source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith import catalog
from optismith.builders.reference import NO_CALIBRATION_REASON
from optismith.errors import DataError
from optismith.results import StageRecord
from optismith.runs.layout import variant_artifact
from optismith.runtimes.tflite import TFLiteRuntime
from optismith.stages.quantize import QuantizeStage
from tests.stages.prepared_run import copy_run, make_context, prepare_run

TFLITE_VARIANTS = [v.name for v in catalog.built_by("quantize")]
# The digits CNN's full int8 passes the gate, so the mixed variant has nothing to keep in float.
MIXED = "tflite-int8-mixed"

pytestmark = [pytest.mark.tf]


@pytest.fixture(scope="module")
def prepared(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_run(digits_dir, tmp_path_factory.mktemp("quantize") / "run")


@pytest.fixture(scope="module")
def all_variants(
    prepared: Path, digits_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StageRecord, Path]:
    root = tmp_path_factory.mktemp("quantize-all")
    run = copy_run(prepared, root / "run")
    ctx = make_context(
        run, root / "work", list(TFLITE_VARIANTS), uri=str(digits_dir / "data" / "calibration.npz"), samples=64
    )
    return QuantizeStage().run(ctx), run


def test_every_tflite_variant_is_built_and_published(all_variants: tuple[StageRecord, Path]) -> None:
    record, run = all_variants
    by_name = {v.name: v for v in record.variants}
    assert sorted(by_name) == sorted(TFLITE_VARIANTS)
    mixed = by_name.pop(MIXED)
    assert mixed.status == "skipped" and "full int8 passes the gate" in mixed.reason, mixed.reason
    for name, variant in by_name.items():
        assert variant.status == "built", (name, variant.reason)
        assert variant.runtime == "tflite" and variant.built_by == "quantize"
        assert variant.artifact == variant_artifact(name)
        assert variant.size_bytes == (run / variant_artifact(name)).stat().st_size > 0
        assert variant.build_seconds is not None and variant.build_seconds > 0
    sizes = {name: by_name[name].size_bytes or 0 for name in by_name}
    # Quantized weights must actually shrink the model.
    assert sizes["tflite-fp16"] < 0.7 * sizes["tflite-fp32"]
    assert sizes["tflite-int8"] < 0.4 * sizes["tflite-fp32"]
    assert record.message.startswith(f"built 5 of {len(TFLITE_VARIANTS)} TFLite variants"), record.message


def test_numerics_are_close_to_the_source(all_variants: tuple[StageRecord, Path]) -> None:
    record, _ = all_variants
    numerics = {v.name: v.numerics for v in record.variants if v.name != MIXED}
    assert all(n is not None and n.samples == 32 for n in numerics.values())
    assert numerics["tflite-fp32"] is not None and numerics["tflite-fp32"].relative_error < 1e-4
    assert numerics["tflite-fp16"] is not None and numerics["tflite-fp16"].relative_error < 1e-2
    for name in ("tflite-dynamic-int8", "tflite-int8", "tflite-int8-io"):
        found = numerics[name]
        assert found is not None and found.top1_agreement is not None and found.top1_agreement > 0.9, name
        assert found.relative_error < 0.1, name
        # int8 cannot be bit-exact: a zero error would mean the comparison is not looking.
        assert found.max_abs_error > 0, name


def test_calibration_file_is_recorded(all_variants: tuple[StageRecord, Path], digits_dir: Path) -> None:
    record, _ = all_variants
    uri = str(digits_dir / "data" / "calibration.npz")
    assert record.payload["calibration"] == {"source": "file", "uri": uri, "samples": 64}
    by_name = {v.name: v for v in record.variants}
    for name in ("tflite-int8", "tflite-int8-io"):
        assert by_name[name].details["calibration"] == uri
        assert by_name[name].details["calibration_samples"] == 64
    assert "calibration" not in by_name["tflite-fp32"].details


def test_int8_io_model_takes_int8_but_runs_with_float_feeds(all_variants: tuple[StageRecord, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    _, run = all_variants
    artifact = run / variant_artifact("tflite-int8-io")
    native = Interpreter(model_path=str(artifact))
    assert native.get_input_details()[0]["dtype"] == np.int8
    assert native.get_output_details()[0]["dtype"] == np.int8

    session = TFLiteRuntime.load(artifact, threads=1)
    assert session.inputs[0].dtype == "float32" and session.outputs[0].dtype == "float32"
    x = np.load(run / "samples" / "inputs.npz")["image"]
    reference = np.load(run / "samples" / "outputs.npz")["output_0"]
    (probabilities,) = session.run([x])
    assert probabilities.dtype == np.float32
    assert np.abs(probabilities - reference).max() < 0.1
    assert np.mean(probabilities.argmax(1) == reference.argmax(1)) > 0.9


def test_synthetic_calibration_is_recorded_as_synthetic(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    ctx = make_context(run, tmp_path / "work", ["tflite-int8"], synthetic=True, samples=32)
    record = QuantizeStage().run(ctx)
    (variant,) = [v for v in record.variants if v.name == "tflite-int8"]
    assert variant.status == "built", variant.reason
    assert variant.details["calibration"] == "synthetic"
    assert record.payload["calibration"] == {"source": "synthetic", "uri": None, "samples": 32}
    assert "synthetic" in record.message
    assert variant.numerics is not None and variant.numerics.top1_agreement is not None
    assert variant.numerics.top1_agreement > 0.5


def test_int8_is_skipped_without_calibration_data(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    ctx = make_context(run, tmp_path / "work", ["tflite-fp32", "tflite-int8", "tflite-int8-io"], synthetic=True)
    # The spec validator refuses this combination, but a stage must not rely on that.
    ctx.spec.calibration.synthetic = False
    record = QuantizeStage().run(ctx)
    by_name = {v.name: v for v in record.variants}
    assert by_name["tflite-fp32"].status == "built"
    for name in ("tflite-int8", "tflite-int8-io"):
        assert by_name[name].status == "skipped"
        assert by_name[name].reason == NO_CALIBRATION_REASON
        assert not (run / variant_artifact(name)).exists()
    assert record.payload["calibration"] == {"source": "none", "uri": None, "samples": 0}


def test_calibration_data_of_the_wrong_shape_fails_with_a_data_error(prepared: Path, tmp_path: Path) -> None:
    run = copy_run(prepared, tmp_path / "run")
    bad = tmp_path / "flat.npz"
    np.savez(bad, x=np.zeros((10, 64), dtype=np.float32))
    ctx = make_context(run, tmp_path / "work", ["tflite-int8"], uri=str(bad))
    with pytest.raises(DataError) as caught:
        QuantizeStage().run(ctx)
    message = str(caught.value)
    assert "(10, 64)" in message and "(N, 8, 8, 1)" in message and str(bad) in message
    assert "Fix: reshape" in message


def test_one_variant_failing_does_not_fail_the_others(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optismith.builders.tflite as tflite

    real = tflite.build

    def broken_fp16(inputs, variant, artifact):  # type: ignore[no-untyped-def]
        if variant.name == "tflite-fp16":
            raise RuntimeError(
                "\n  <unknown>:0: note: see current operation\n"
                "<unknown>:0: error: 'tfl.fake' op is not supported\nmore detail"
            )
        return real(inputs, variant, artifact)

    monkeypatch.setattr(tflite, "build", broken_fp16)
    run = copy_run(prepared, tmp_path / "run")
    ctx = make_context(run, tmp_path / "work", ["tflite-fp16", "tflite-fp32"])
    record = QuantizeStage().run(ctx)
    by_name = {v.name: v for v in record.variants}
    assert by_name["tflite-fp16"].status == "failed"
    assert by_name["tflite-fp16"].reason == "RuntimeError: 'tfl.fake' op is not supported"
    assert by_name["tflite-fp16"].artifact is None
    assert by_name["tflite-fp32"].status == "built"
    assert record.message == "built 1 of 2 TFLite variants"


def test_no_tflite_variants_requested_builds_nothing(prepared: Path, tmp_path: Path) -> None:
    ctx = make_context(prepared, tmp_path / "work", ["onnx-fp32"])
    record = QuantizeStage().run(ctx)
    assert record.variants == [] and record.message == "no TFLite variants requested"
