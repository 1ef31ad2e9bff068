"""The inspect stage: what it records, what it publishes, and what it refuses."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from optismith.errors import ModelFormatError, ModelSignatureError, UnsafeArchiveError, UnsafeModelError
from optismith.results import SourceInfo, StageRecord
from optismith.runs.layout import variant_artifact
from optismith.stages.inspect import InspectStage
from tests.stages.tf_sources import GRAPH_INPUTS, GRAPH_OUTPUTS, context, frozen_pb, run, write_file_saved_model

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def inspected(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[StageRecord, Path]:
    tmp = tmp_path_factory.mktemp("inspect")
    ctx = context(digits_dir / "model", tmp)
    return run(ctx, InspectStage), tmp / "run"


def test_source_info(inspected: tuple[StageRecord, Path], digits_dir: Path) -> None:
    import keras

    record, _ = inspected
    info = SourceInfo.model_validate(record.payload["source"])
    assert info.format == "savedmodel" and info.signature == "serving_default"
    assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [("image", "float32", [None, 8, 8, 1])]
    assert [(t.name, t.shape) for t in info.outputs] == [("output_0", [None, 10])]
    assert info.op_histogram["Conv2D"] == 3 and info.op_count == sum(info.op_histogram.values())
    model = keras.saving.load_model(digits_dir / "model.keras", compile=False)
    assert info.parameter_count == model.count_params()
    assert info.flops_per_sample is not None and info.flops_per_sample > 2 * model.count_params()
    on_disk = sum(p.stat().st_size for p in (digits_dir / "model").rglob("*") if p.is_file())
    assert info.size_bytes == on_disk


def test_baseline_variant_is_published(inspected: tuple[StageRecord, Path]) -> None:
    record, run_dir = inspected
    (variant,) = record.variants
    assert (variant.name, variant.runtime, variant.status) == ("tf-savedmodel", "tf-savedmodel", "built")
    assert variant.artifact == variant_artifact("tf-savedmodel") == "variants/tf-savedmodel/saved_model"
    baseline = run_dir / variant.artifact
    assert (baseline / "saved_model.pb").is_file()
    assert variant.size_bytes == sum(p.stat().st_size for p in baseline.rglob("*") if p.is_file())
    assert variant.op_count == record.payload["source"]["op_count"] and variant.built_by == "inspect"


def test_samples_and_the_baseline_outputs_on_them(inspected: tuple[StageRecord, Path], digits_dir: Path) -> None:
    import tensorflow as tf

    record, run_dir = inspected
    inputs = np.load(run_dir / "samples" / "inputs.npz")
    outputs = np.load(run_dir / "samples" / "outputs.npz")
    assert inputs.files == ["image"] and outputs.files == ["output_0"]
    x = inputs["image"]
    assert x.shape == (32, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    loaded = tf.saved_model.load(str(digits_dir / "model"))
    expected = loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy()
    np.testing.assert_allclose(outputs["output_0"], expected, atol=1e-6)
    assert record.payload["samples"]["written"] is True and record.payload["samples"]["seed"] == 0


def test_samples_are_reproducible(inspected: tuple[StageRecord, Path], digits_dir: Path, tmp_path: Path) -> None:
    _, first = inspected
    run(context(digits_dir / "model", tmp_path), InspectStage)
    np.testing.assert_array_equal(
        np.load(tmp_path / "run" / "samples" / "inputs.npz")["image"],
        np.load(first / "samples" / "inputs.npz")["image"],
    )


def test_wrong_signature_name_lists_the_available_ones(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model", tmp_path, model={"signature": "predict"})
    with pytest.raises(ModelSignatureError, match=r"no signature 'predict'; it has \['serve', 'serving_default'\]"):
        run(ctx, InspectStage)


def test_keras_models_only_have_serving_default(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model.keras", tmp_path, model={"signature": "classify"})
    with pytest.raises(ModelSignatureError, match="serving_default"):
        run(ctx, InspectStage)


def test_wrong_input_name_of_a_saved_model(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model", tmp_path, model={"inputs": [{"name": "pixels", "shape": [-1, 8, 8, 1]}]})
    with pytest.raises(ModelSignatureError, match=r"no input 'pixels'; its inputs are \['image'\]"):
        run(ctx, InspectStage)


def test_wrong_input_and_output_names_of_a_frozen_graph(tmp_path: Path) -> None:
    pb = frozen_pb(tmp_path / "graph")
    wrong_input = [{**GRAPH_INPUTS[0], "name": "pixels"}]
    with pytest.raises(ModelSignatureError, match="input 'pixels' is not in the graph; its placeholders are: x"):
        run(context(pb, tmp_path / "a", model={"inputs": wrong_input, "outputs": GRAPH_OUTPUTS}), InspectStage)
    with pytest.raises(ModelSignatureError, match=r"output 'logits' is not in the graph.*probs"):
        run(context(pb, tmp_path / "b", model={"inputs": GRAPH_INPUTS, "outputs": ["logits"]}), InspectStage)
    wrong_dtype = [{**GRAPH_INPUTS[0], "dtype": "int32"}]
    with pytest.raises(ModelSignatureError, match=r"float32 in the graph but spec\.model\.inputs says int32"):
        run(context(pb, tmp_path / "c", model={"inputs": wrong_dtype, "outputs": GRAPH_OUTPUTS}), InspectStage)


def test_frozen_graph_without_inputs_is_told_what_to_set(tmp_path: Path) -> None:
    pb = frozen_pb(tmp_path / "graph")
    with pytest.raises(ModelSignatureError, match="carries no signature") as caught:
        run(context(pb, tmp_path), InspectStage)
    assert "spec.model.inputs" in caught.value.fix


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.onnx").write_bytes(b"o")
    with pytest.raises(ModelFormatError, match=r"weights\.onnx"):
        run(context(tmp_path / "model", tmp_path), InspectStage)


def test_corrupt_saved_model(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "saved_model.pb").write_bytes(b"\xff\xff not a protobuf")
    with pytest.raises(ModelFormatError, match="not a valid SavedModel"):
        run(context(tmp_path / "model", tmp_path), InspectStage)


def test_oversized_model(digits_dir: Path, tmp_path: Path) -> None:
    ctx = context(digits_dir / "model", tmp_path, limits={"maxModelSize": "10k"})
    with pytest.raises(ModelFormatError, match="maxModelSize"):
        run(ctx, InspectStage)


def test_tar_slip_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("../../evil.sh")
        info.size = 4
        handle.addfile(info, io.BytesIO(b"boom"))
    with pytest.raises(UnsafeArchiveError, match="path traversal"):
        run(context(archive, tmp_path), InspectStage)
    assert not (tmp_path / "evil.sh").exists() and not (tmp_path.parent / "evil.sh").exists()


def test_model_writing_files_is_refused_before_it_runs(tmp_path: Path) -> None:
    target = tmp_path / "written-by-the-model"
    model = write_file_saved_model(tmp_path / "leaky", target)
    with pytest.raises(UnsafeModelError, match="WriteFile") as caught:
        run(context(model, tmp_path / "refused"), InspectStage)
    assert "spec.security.allowOps: [WriteFile]" in caught.value.fix
    assert not target.exists(), "the scan runs before anything executes the model"


def test_model_writing_files_is_accepted_when_allowed(tmp_path: Path) -> None:
    target = tmp_path / "written-by-the-model"
    model = write_file_saved_model(tmp_path / "leaky", target)
    record = run(context(model, tmp_path / "allowed", security={"allowOps": ["WriteFile"]}), InspectStage)
    assert record.variants[0].status == "built"
    assert target.exists(), "the model really writes files when run (on the sample inputs)"


def test_string_inputs_get_no_invented_samples(tmp_path: Path) -> None:
    import tensorflow as tf

    from optismith.stages.freeze import FreezeStage

    class Lengths(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: object) -> dict[str, object]:
            return {"length": tf.strings.length(text)}

    module = Lengths()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    ctx = context(tmp_path / "model", tmp_path)
    record = run(ctx, InspectStage)
    assert record.payload["samples"]["written"] is False and "string" in record.payload["samples"]["reason"]
    assert not ctx.store.exists("samples/inputs.npz")
    frozen = run(ctx, FreezeStage).variants[0]
    assert frozen.status == "built" and frozen.details["numerics"] == "not checked: no samples"
