"""Building one variant, without TensorFlow: error lines, calibration batches, batched numerics, and how a
variant's skip, failure or non-finite output is recorded. The variants are fakes added to the catalog and
their runtime a fake added to the runtime registry, as a plugin would add them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import optismith.runtimes as runtimes
from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable, build_variant, first_meaningful_line, run_in_batches
from optismith.builders.reference import NO_CALIBRATION, Calibration, load_reference, resolve_calibration
from optismith.results import TensorInfo
from optismith.runs.stage import StageContext
from optismith.runtimes.base import IOSpec, Runtime, Session
from optismith.spec import ModelOptimization
from optismith.storage.local import LocalStorage

MLIR_ERROR = (
    'Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(fused["MatrixDeterminant:", '
    '"MatrixDeterminant@__inference_f_15"] at fused["StatefulPartitionedCall:", "StatefulPartitionedCall"])): '
    "'tf.MatrixDeterminant' op is neither a custom op nor a flex op\n"
    '<unknown>:0: note: loc(fused["StatefulPartitionedCall:", "StatefulPartitionedCall"]): called from\n'
    "<unknown>:0: error: failed while converting: 'main'"
)


class ConverterError(Exception):
    pass


def test_first_meaningful_line_strips_mlir_locations() -> None:
    assert first_meaningful_line(ConverterError(MLIR_ERROR)) == (
        "ConverterError: 'tf.MatrixDeterminant' op is neither a custom op nor a flex op"
    )


def test_first_meaningful_line_of_plain_and_empty_errors() -> None:
    assert first_meaningful_line(ValueError("\n\n  bad opset\nsecond")) == "ValueError: bad opset"
    assert first_meaningful_line(RuntimeError()) == "RuntimeError: RuntimeError"
    assert len(first_meaningful_line(ValueError("x" * 5000))) == 400


def test_calibration_batches_keep_names_and_drop_short_batches_on_request() -> None:
    calibration = Calibration("file", "cal.npz", ["a", "b"], [np.arange(10), np.arange(10) * 2])
    sizes = [len(batch["a"]) for batch in calibration.batches(4)]
    assert sizes == [4, 4, 2]
    assert [len(batch["b"]) for batch in calibration.batches(4, complete_only=True)] == [4, 4]
    first = next(calibration.batches(4))
    assert list(first["b"]) == [0, 2, 4, 6]
    assert calibration.payload() == {"source": "file", "uri": "cal.npz", "samples": 10}
    assert calibration.describe() == "cal.npz"
    assert Calibration("synthetic", None, ["a"], [np.zeros(3)]).describe() == "synthetic"


class ScaleSession(Session):
    """y = scale * x, batch fixed to `batch` when given."""

    def __init__(self, scale: float, batch: int | None) -> None:
        self.scale = scale
        self.inputs = [IOSpec("image", "float32", (batch, 2))]
        self.outputs = [IOSpec("scores", "float32", (batch, 2))]
        self.batches: list[int] = []

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        self.batches.append(len(feeds[0]))
        return [feeds[0] * self.scale]


def test_run_in_batches_respects_a_fixed_batch() -> None:
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    session = ScaleSession(2.0, batch=3)
    (out,) = run_in_batches(session, [x])
    assert session.batches == [3, 3]
    np.testing.assert_array_equal(out, x * 2)
    with pytest.raises(ValueError, match="fixed batch size 4"):
        run_in_batches(ScaleSession(1.0, batch=4), [x])
    dynamic = ScaleSession(1.0, batch=None)
    run_in_batches(dynamic, [np.zeros((40, 2), dtype=np.float32)])
    assert dynamic.batches == [32, 8]


class ScaleRuntime(Runtime):
    """Artifacts are JSON files: {"scale": factor}."""

    name: ClassVar[str] = "scale"

    @classmethod
    def availability(cls) -> str | None:
        return None

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        return ScaleSession(float(json.loads(artifact.read_text())["scale"]), None)


def write_scale(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """The fake variants' builder: the catalog entry's options say what to write."""
    if variant.options.get("raise") == "unavailable":
        raise Unavailable("the scale toolchain is not installed here")
    if variant.options.get("raise") == "mlir":
        raise ConverterError(MLIR_ERROR)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text(variant.options.get("text") or json.dumps({"scale": float(variant.options["scale"])}))
    return {"scale": variant.options.get("scale"), "op_count": 1}


def fake(name: str, **options: str) -> catalog.Variant:
    return catalog.Variant(name, "a fake for tests", "scale", "quantize", "model.json",
                           builder=f"{__name__}:write_scale", options=options)


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StageContext]:
    monkeypatch.setitem(runtimes.RUNTIMES, "scale", f"{__name__}:ScaleRuntime")
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    x = np.random.default_rng(0).random((5, 2)).astype(np.float32)
    np.savez(run / "samples" / "inputs.npz", image=x)
    np.savez(run / "samples" / "outputs.npz", scores=x)
    manifest = ModelOptimization.model_validate(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "m"},
            "spec": {"model": {"uri": "/m"}, "output": {"uri": str(tmp_path)}, "variants": ["tflite-fp32"]},
        }
    )
    with catalog.extended(fake("scale-one", scale="1.0"), fake("scale-nan", scale="nan"),
                          fake("scale-broken", **{"raise": "mlir"}), fake("scale-missing", **{"raise": "unavailable"}),
                          fake("scale-garbage", text="not json")):
        yield StageContext(manifest=manifest, store=LocalStorage(run), workdir=tmp_path / "work")


def inputs(ctx: StageContext) -> BuildInputs:
    return BuildInputs(ctx, load_reference(ctx), NO_CALIBRATION)


def test_reference_without_io_json_comes_from_the_samples(ctx: StageContext) -> None:
    reference = load_reference(ctx)
    assert reference.inputs == [TensorInfo(name="image", dtype="float32", shape=[None, 2])]
    assert reference.outputs[0].name == "scores"
    assert reference.sample_outputs is not None and reference.sample_outputs[0].shape == (5, 2)


def test_a_built_variant_is_published_with_numerics(ctx: StageContext) -> None:
    record = build_variant(inputs(ctx), catalog.get("scale-one"))
    assert record.status == "built" and record.op_count == 1 and record.details == {"scale": "1.0"}
    assert record.numerics is not None and record.numerics.max_abs_error == 0.0
    assert record.built_by == "quantize" and record.runtime == "scale"
    assert ctx.store.exists("variants/scale-one/model.json")


def test_non_finite_outputs_reject_the_variant(ctx: StageContext) -> None:
    record = build_variant(inputs(ctx), catalog.get("scale-nan"))
    assert record.status == "rejected"
    assert record.reason == "outputs NaN or infinite values on the sample inputs"


def test_a_build_that_raises_fails_only_the_variant(ctx: StageContext) -> None:
    record = build_variant(inputs(ctx), catalog.get("scale-broken"))
    assert record.status == "failed" and record.artifact is None
    assert record.reason == "ConverterError: 'tf.MatrixDeterminant' op is neither a custom op nor a flex op"
    assert not ctx.store.exists("variants/scale-broken/model.json")


def test_a_variant_that_cannot_be_built_here_is_skipped_with_the_reason(ctx: StageContext) -> None:
    record = build_variant(inputs(ctx), catalog.get("scale-missing"))
    assert (record.status, record.reason) == ("skipped", "the scale toolchain is not installed here")


def test_an_artifact_the_runtime_cannot_load_fails_the_variant(ctx: StageContext) -> None:
    record = build_variant(inputs(ctx), catalog.get("scale-garbage"))
    assert record.status == "failed"
    assert record.reason.startswith("built, but scale cannot run it: JSONDecodeError")


def test_a_variant_that_needs_calibration_is_skipped_without_it(ctx: StageContext) -> None:
    needy = catalog.Variant("scale-int8", "needs data", "scale", "quantize", "model.json",
                            builder=f"{__name__}:write_scale", options={"scale": "1"}, calibration=True)
    with catalog.extended(needy):
        record = build_variant(inputs(ctx), needy)
    assert record.status == "skipped" and "spec.calibration.uri" in record.reason


def test_synthetic_calibration_that_cannot_be_made_skips_instead_of_failing(ctx: StageContext) -> None:
    ctx.spec.calibration.synthetic = True
    calibration = resolve_calibration(ctx, [TensorInfo(name="tokens", dtype="int64", shape=[None, None])])
    assert not calibration.available
    assert calibration.unavailable_reason.startswith("needs calibration data: cannot invent data")
    assert "give real samples" in calibration.unavailable_reason
    made = resolve_calibration(ctx, [TensorInfo(name="image", dtype="float32", shape=[None, 2])])
    assert made.source == "synthetic" and made.samples == ctx.spec.calibration.samples


def test_gpu_variants_are_built_only_for_specs_with_a_gpu_target(ctx: StageContext) -> None:
    gpu_only = catalog.Variant("scale-gpu", "needs a GPU target", "scale", "quantize", "model.json",
                               builder=f"{__name__}:write_scale", options={"scale": "1"}, gpu=True)
    with catalog.extended(gpu_only):
        record = build_variant(inputs(ctx), gpu_only)
        assert (record.status, record.reason) == ("skipped", "runs only on GPU targets, and spec.targets has none")
        ctx.spec.targets.append(ctx.spec.targets[0].model_copy(update={"name": "h200", "kind": "gpu"}))
        assert build_variant(inputs(ctx), gpu_only).status == "built"
