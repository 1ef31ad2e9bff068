"""The optimize stage: tf-grappler (folding + offline Grappler) behind the numerics gate, and tf-xla."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.results import StageRecord
from optismith.runs.layout import variant_artifact
from optismith.spec import DEFAULT_PASSES
from optismith.stages.freeze import FreezeStage
from optismith.stages.inspect import InspectStage
from optismith.stages.optimize import OptimizeStage
from tests.stages.tf_sources import context, prepare, run

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def prepared(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, StageRecord], Path]:
    tmp = tmp_path_factory.mktemp("optimize")
    ctx = context(digits_dir / "model", tmp, variants=["tf-savedmodel", "tf-frozen", "tf-grappler", "tf-xla"])
    return prepare(ctx), tmp / "run"


def _variant(records: dict[str, StageRecord], name: str) -> Any:
    return next(v for v in records["optimize"].variants if v.name == name)


def test_grappler_variant(prepared: tuple[dict[str, StageRecord], Path]) -> None:
    records, run_dir = prepared
    variant = _variant(records, "tf-grappler")
    expected = ("built", "tf-graphdef", variant_artifact("tf-grappler"))
    assert (variant.status, variant.runtime, variant.artifact) == expected
    assert (run_dir / "variants" / "tf-grappler" / "optimized.pb").is_file()
    assert (run_dir / "variants" / "tf-grappler" / "io.json").is_file()
    details = variant.details
    assert details["source"] == variant_artifact("tf-frozen")
    assert details["passes"] == list(DEFAULT_PASSES) and "remap" in details["grappler_optimizers"]
    assert details["ops_before"] == records["freeze"].variants[0].op_count
    assert details["ops_after"] == variant.op_count < details["ops_before"] / 2
    assert details["op_histogram"]["_FusedConv2D"] == 3, "the remapper fused Conv2D+BiasAdd+Relu"
    assert details["optimize_for_inference"]["status"] == "no-op"
    assert variant.numerics is not None and variant.numerics.relative_error < 1e-4


def test_xla_variant(prepared: tuple[dict[str, StageRecord], Path]) -> None:
    records, run_dir = prepared
    variant = _variant(records, "tf-xla")
    assert (variant.status, variant.runtime) == ("built", "tf-xla")
    assert (run_dir / variant_artifact("tf-xla") / "saved_model.pb").is_file()
    assert variant.numerics is not None and variant.numerics.relative_error < 1e-4


def test_only_requested_variants_are_built(digits_dir: Path, tmp_path: Path) -> None:
    records = prepare(context(digits_dir / "model", tmp_path, variants=["tf-savedmodel", "tf-grappler"]))
    assert [v.name for v in records["optimize"].variants] == ["tf-grappler"]
    assert records["freeze"].variants == []
    assert not (tmp_path / "run" / "variants" / "tf-xla").exists()


def test_passes_come_from_the_spec(digits_dir: Path, tmp_path: Path) -> None:
    records = prepare(context(digits_dir / "model", tmp_path, optimize={"passes": ["constfold"]}))
    variant = _variant(records, "tf-grappler")
    assert variant.details["passes"] == ["constfold"]
    assert "_FusedConv2D" not in variant.details["op_histogram"] and variant.status == "built"


def test_without_a_frozen_graph_the_stage_freezes_the_baseline(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model", tmp_path)
    run(ctx, InspectStage)
    record = run(ctx, OptimizeStage)
    assert record.variants[0].status == "built"
    assert record.variants[0].details["source"] == "the baseline, frozen by this stage"


def test_a_wrong_transformation_is_rejected_by_the_numerics_gate(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Grappler that scales one weight tensor: the stage succeeds, the variant is rejected."""
    import tensorflow as tf

    from optismith.models import grappler

    def wrong_grappler(graph_def: Any, io: Any, passes: list[str]) -> Any:
        optimized = grappler.run_grappler(graph_def, io, passes)
        const = next(n for n in optimized.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_shape.dim) == 4)
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(tf.make_ndarray(const.attr["value"].tensor) * 1.5))
        return optimized

    monkeypatch.setattr("optismith.builders.graph.run_grappler", wrong_grappler)
    ctx = context(digits_dir / "model", tmp_path)
    run(ctx, InspectStage)
    run(ctx, FreezeStage)
    record = run(ctx, OptimizeStage)
    assert record.status == "succeeded"
    (variant,) = record.variants
    assert variant.status == "rejected"
    assert variant.numerics is not None and variant.numerics.relative_error > 1e-3
    assert "relative error" in variant.reason and "maxAbsError 0.001" in variant.reason


def test_the_tolerance_comes_from_the_spec(digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optismith.models import grappler

    def wrong_activation(graph_def: Any, io: Any, passes: list[str]) -> Any:
        optimized = grappler.run_grappler(graph_def, io, passes)
        softmax = next(n for n in optimized.node if n.op == "Softmax")
        softmax.op = "Relu"  # probabilities become rectified logits
        return optimized

    monkeypatch.setattr("optismith.builders.graph.run_grappler", wrong_activation)
    strict = prepare(context(digits_dir / "model", tmp_path / "strict"))
    assert _variant(strict, "tf-grappler").status == "rejected"
    loose = prepare(context(digits_dir / "model", tmp_path / "loose", optimize={"maxAbsError": "1000"}))
    assert _variant(loose, "tf-grappler").status == "built"


def test_a_failure_fails_the_variant_not_the_stage(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(graph_def: Any, io: Any, passes: list[str]) -> Any:
        raise RuntimeError("grappler exploded")

    monkeypatch.setattr("optismith.builders.graph.run_grappler", broken)
    records = prepare(
        context(digits_dir / "model", tmp_path, variants=["tf-savedmodel", "tf-frozen", "tf-grappler", "tf-xla"])
    )
    assert records["optimize"].status == "succeeded"
    assert _variant(records, "tf-grappler").status == "failed"
    assert "grappler exploded" in _variant(records, "tf-grappler").reason
    assert _variant(records, "tf-xla").status == "built"


@pytest.mark.slow
def test_mobilenet_v2_loses_most_of_its_ops(tmp_path: Path) -> None:
    import keras

    model = keras.applications.MobileNetV2(weights=None)
    model.export(str(tmp_path / "mobilenet"), verbose=False)
    records = prepare(context(tmp_path / "mobilenet", tmp_path / "work"))
    source = records["inspect"].payload["source"]
    frozen, optimized = records["freeze"].variants[0], _variant(records, "tf-grappler")
    print(
        f"MobileNetV2: {source['op_count']} ops in the signature, {frozen.op_count} frozen, "
        f"{optimized.op_count} after Grappler; {source['parameter_count']} parameters, "
        f"{source['flops_per_sample'] / 1e6:.1f} MFLOPs/sample; Grappler took {optimized.build_seconds:.2f}s"
    )
    assert source["parameter_count"] == model.count_params()
    assert 550e6 < source["flops_per_sample"] < 650e6  # ~300M multiply-adds
    assert optimized.status == "built", optimized.reason
    assert frozen.op_count is not None and optimized.op_count is not None
    assert optimized.op_count < frozen.op_count / 4
    assert np.isfinite(optimized.numerics.max_abs_error)
