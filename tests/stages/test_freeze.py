"""The freeze stage: tf-frozen (frozen.pb + io.json), gated on numerics, written for later stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from optismith.results import StageRecord
from optismith.runs.layout import variant_artifact
from optismith.runtimes.tf import GraphDefRuntime
from optismith.stages.freeze import FreezeStage
from optismith.stages.inspect import InspectStage
from tests.stages.tf_sources import context, run

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def frozen(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[StageRecord, StageRecord, Path]:
    tmp = tmp_path_factory.mktemp("freeze")
    ctx = context(digits_dir / "model", tmp)
    return run(ctx, InspectStage), run(ctx, FreezeStage), tmp / "run"


def test_frozen_variant(frozen: tuple[StageRecord, StageRecord, Path]) -> None:
    inspect, freeze, run_dir = frozen
    (variant,) = freeze.variants
    assert (variant.name, variant.runtime, variant.status) == ("tf-frozen", "tf-graphdef", "built")
    assert variant.artifact == variant_artifact("tf-frozen") == "variants/tf-frozen/frozen.pb"
    assert variant.size_bytes == (run_dir / variant.artifact).stat().st_size
    assert variant.details["ops_before"] == inspect.payload["source"]["op_count"]
    assert variant.details["ops_after"] == variant.op_count == sum(variant.details["op_histogram"].values())
    assert not {"VarHandleOp", "ReadVariableOp"} & set(variant.details["op_histogram"]), "no variables left"
    assert variant.numerics is not None and variant.numerics.samples == 32
    assert variant.numerics.relative_error < 1e-5 and variant.numerics.top1_agreement == 1.0


def test_io_sidecar_and_the_runtime(frozen: tuple[StageRecord, StageRecord, Path]) -> None:
    _, _, run_dir = frozen
    io = json.loads((run_dir / "variants" / "tf-frozen" / "io.json").read_text())
    assert io["inputs"] == [{"name": "image", "tensor": "image:0", "dtype": "float32", "shape": [None, 8, 8, 1]}]
    assert [(o["name"], o["shape"]) for o in io["outputs"]] == [("output_0", [None, 10])]
    session = GraphDefRuntime.load(run_dir / "variants" / "tf-frozen" / "frozen.pb", threads=1)
    (outputs,) = session.run([np.load(run_dir / "samples" / "inputs.npz")["image"]])
    np.testing.assert_allclose(outputs, np.load(run_dir / "samples" / "outputs.npz")["output_0"], atol=1e-6)


def test_frozen_graph_is_written_for_later_stages_even_when_not_benchmarked(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model", tmp_path, variants=["tf-savedmodel", "tflite-fp32"])
    run(ctx, InspectStage)
    record = run(ctx, FreezeStage)
    assert record.variants == [] and "not requested" in record.message
    assert (tmp_path / "run" / "variants" / "tf-frozen" / "frozen.pb").is_file()
    assert (tmp_path / "run" / "variants" / "tf-frozen" / "io.json").is_file()


def test_a_freeze_failure_fails_the_variant_not_the_stage(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(digits_dir / "model", tmp_path)
    run(ctx, InspectStage)

    def broken(directory: Path, signature: str) -> None:
        raise RuntimeError("converter exploded")

    monkeypatch.setattr("optismith.stages.freeze.freeze_saved_model", broken)
    record = run(ctx, FreezeStage)
    assert record.status == "succeeded"
    assert record.variants[0].status == "failed" and "converter exploded" in record.variants[0].reason
