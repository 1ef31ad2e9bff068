"""Promoted layouts load in the runtime promotion.json names, from the stable paths servers are pointed at,
and give the source model's outputs; Triton's config.pbtxt parses as Triton's ModelConfig."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.results import PromotionManifest, Selection, SourceInfo, StageRecord, TensorInfo, VariantRecord
from optismith.runs.layout import stage_record
from optismith.runs.manifest import write_manifest
from optismith.runs.stage import StageContext
from optismith.runtimes import get_runtime
from optismith.spec import ModelOptimization
from optismith.stages.promote import PromoteStage
from optismith.stages.quantize import QuantizeStage
from tests.fixtures.schema_packages import triton_model_config
from tests.stages.prepared_run import make_context, prepare_run
from tests.stages.promotion_runs import candidate

pytestmark = [pytest.mark.tf, pytest.mark.slow]
WINNERS = ["tflite-fp32", "onnx-fp32", "tf-savedmodel", "tf-frozen"]


@pytest.fixture(scope="module")
def built_run(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with the SavedModel, the frozen graph, TFLite and ONNX float variants."""
    from optismith.stages.convert import ConvertStage

    root = tmp_path_factory.mktemp("promote-serving")
    run = prepare_run(digits_dir, root / "run")
    records = {"inspect": VariantRecord(name="tf-savedmodel", runtime="tf-savedmodel", status="built",
                                        artifact="variants/tf-savedmodel/saved_model", built_by="inspect"),
               "freeze": VariantRecord(name="tf-frozen", runtime="tf-graphdef", status="built",
                                       artifact="variants/tf-frozen/frozen.pb", built_by="freeze")}
    ctx = make_context(run, root / "work", ["tflite-fp32", "onnx-fp32"], synthetic=True, samples=8)
    source = SourceInfo(format="savedmodel", uri=str(digits_dir / "model"), signature="serving_default",
                        inputs=[TensorInfo(name="image", dtype="float32", shape=[None, 8, 8, 1])],
                        outputs=[TensorInfo(name="output_0", dtype="float32", shape=[None, 10])],
                        op_histogram={}, op_count=1, parameter_count=1, flops_per_sample=None, size_bytes=1)
    for stage, variant in records.items():
        payload = {"source": source.model_dump(mode="json")} if stage == "inspect" else {}
        ctx.store.write_bytes(stage_record(stage), StageRecord(
            stage=stage, status="succeeded", started_at="", finished_at="", duration_seconds=0.0, variants=[variant],
            payload=payload).model_dump_json().encode())
    for stage in (QuantizeStage(), ConvertStage()):
        ctx.store.write_bytes(stage_record(stage.name), stage.run(ctx).model_dump_json().encode())
    return run


def promote(run: Path, destination: Path, winner: str, generation: int, workdir: Path) -> PromotionManifest:
    base = make_context(run, workdir, WINNERS)
    document = base.manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["metadata"].update(namespace="ml", generation=generation, uid="uid-1")
    document["spec"]["promotion"] = {"uri": str(destination)}
    ctx = StageContext(manifest=ModelOptimization.model_validate(document), store=base.store, workdir=workdir)
    selection = Selection(objective="latencyP50", batch_size=1, winner=winner, winner_target="cpu", outcome="selected",
                          message="picked", candidates=[candidate(winner)])
    ctx.store.write_bytes(stage_record("select"), StageRecord(
        stage="select", status="succeeded", started_at="", finished_at="", duration_seconds=0.0,
        payload={"selection": selection.model_dump(mode="json")}).model_dump_json().encode())
    ctx.store.write_bytes("results.json", b"{}")
    write_manifest(ctx.store)
    record = PromoteStage().run(ctx)
    assert record.payload["promoted"] is True, record.payload
    return PromotionManifest.model_validate_json((destination / "promotion.json").read_bytes())


def outputs_of(runtime: str, artifact: Path, inputs: np.ndarray) -> np.ndarray:
    session = get_runtime(runtime).load(artifact, threads=1)
    try:
        return session.run([inputs])[0]
    finally:
        session.close()


@pytest.mark.parametrize("winner", WINNERS)
def test_every_stable_path_loads_in_the_named_runtime(built_run: Path, tmp_path: Path, winner: str) -> None:
    destination = tmp_path / "promoted"
    promote(built_run, destination, "tf-savedmodel", 1, tmp_path / "w1")  # something older to replace
    record = promote(built_run, destination, winner, 2, tmp_path / "w2")
    inputs = np.load(built_run / "samples" / "inputs.npz")["image"][:4]
    expected = next(iter(np.load(built_run / "samples" / "outputs.npz").values()))[:4]
    # The artifact promotion.json names, and the same files where each server it lists is pointed.
    paths = {"artifact": destination / record.artifact}
    name, version, fmt = record.model_name, record.version, record.format
    model_file = {"onnx": "model.onnx", "graphdef": "model.graphdef", "savedmodel": "model.savedmodel"}.get(fmt)
    if "triton" in record.servers:
        paths["triton"] = destination / record.servers["triton"].path / name / str(version) / str(model_file)
    if "tfserving" in record.servers:
        version_dir = destination / record.servers["tfserving"].path / str(version)
        paths["tfserving"] = version_dir / "model.tflite" if fmt == "tflite" else version_dir
    kserve = destination / record.servers["kserve"].path
    paths["kserve"] = (kserve / name / str(version) / str(model_file) if fmt in ("onnx", "graphdef")
                       else kserve / str(version) / ("model.tflite" if fmt == "tflite" else ""))
    assert record.version == 2 and record.generation == 2
    for where, path in paths.items():
        got = outputs_of(record.runtime, path, inputs)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{winner} from {where} ({path})")
    # The KServe prefix downloads only this model: one version, nothing of the replaced SavedModel.
    kserve_files = sorted(p.relative_to(kserve).as_posix() for p in kserve.rglob("*") if p.is_file())
    assert kserve_files and all(f"{version}/" in f or f.endswith("config.pbtxt") for f in kserve_files), kserve_files
    assert not [f for f in kserve_files if f.startswith("1/") or "/1/" in f]


@pytest.mark.parametrize("winner", ["onnx-fp32", "tf-savedmodel", "tf-frozen"])
def test_triton_configs_are_valid_model_configs(built_run: Path, tmp_path: Path, winner: str) -> None:
    from google.protobuf import text_format

    destination = tmp_path / "promoted"
    record = promote(built_run, destination, winner, 1, tmp_path / "w")
    text = (destination / "triton" / record.model_name / "config.pbtxt").read_text()
    config = text_format.Parse(text, triton_model_config()())  # refuses unknown fields and bad values
    assert config.name == record.model_name and config.max_batch_size == 0
    assert config.version_policy.latest.num_versions == 1
    assert config.platform == {"onnx": "onnxruntime_onnx", "savedmodel": "tensorflow_savedmodel",
                               "graphdef": "tensorflow_graphdef"}[record.format]
    if record.format != "onnx":  # the SavedModel's signature and the GraphDef's tensors are written out
        assert [i.name for i in config.input] and config.input[0].dims[0] == -1
