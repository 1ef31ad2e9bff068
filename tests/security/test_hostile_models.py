"""Hostile models through the worker's command line (`optismith stage inspect`, what a prepare Job runs).

Each model is refused with UnsafeModel before any of its ops runs (nothing loads it: the baseline is never
built), it writes no file outside the scratch directory, and neither the planted secret nor the S3 credentials
appear in any byte of the run directory or the termination message. The controls show each model is a real
attack: loaded by the stock loaders, or with its op allowed, it does the harm the refusal prevents.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.stages import inspect as inspect_stage
from optismith.storage import open_storage
from tests.security import hostile
from tests.security.kit import FILE_SECRET, Plant, files_holding, plant, run_in_process, write_manifest

pytestmark = pytest.mark.tf

CHECKPOINT_IO = {"model": {"format": "checkpoint", "inputs": [{"name": "x", "shape": [-1, 4]}], "outputs": ["y"]}}
Build = Callable[[Path, Plant], tuple[Path, dict[str, Any]]]


def _op(attach: Callable[[Any, Any, Plant], Any]) -> Build:
    return lambda tmp, p: (hostile.with_op_savedmodel(tmp / "model", lambda tf, x: attach(tf, x, p)), {})


def _cardinality(tf: Any, dataset: Any) -> Any:
    return tf.raw_ops.DatasetCardinality(input_dataset=dataset)


def _skipgram(tmp: Path, p: Plant) -> tuple[Path, dict[str, Any]]:
    model = hostile.with_op_savedmodel(tmp / "model", lambda tf, x: tf.identity(x))
    return hostile.inject_node(model, "Skipgram", {"filename": str(p.secret).encode()}), {}


# case -> (build the model, the ops the refusal must name)
CASES: dict[str, tuple[Build, list[str]]] = {
    "restore op that writes a file (SavedModel)": (
        lambda tmp, p: (hostile.restore_op_savedmodel(tmp / "model", str(p.target)), {}), ["WriteFile"]),
    "restore op that writes a file (TF1 checkpoint .meta)": (
        lambda tmp, p: (hostile.checkpoint_meta(tmp / "model", str(p.target)), CHECKPOINT_IO), ["WriteFile"]),
    "table from a planted host file, returned as an output": (
        lambda tmp, p: (hostile.table_leak_savedmodel(tmp / "model", str(p.secret)), {}),
        ["InitializeTableFromTextFileV2"]),
    "table from /proc/self/environ, returned as an output": (
        lambda tmp, p: (hostile.table_leak_savedmodel(tmp / "model", "/proc/self/environ"), {}),
        ["InitializeTableFromTextFileV2"]),
    "asset with an absolute path": (
        lambda tmp, p: (hostile.asset_escape_savedmodel(tmp / "model", str(p.secret)), {}),
        ["AssetFileDef", "InitializeTableFromTextFileV2"]),
    "asset climbing out of assets/ with ..": (
        lambda tmp, p: (hostile.asset_escape_savedmodel(tmp / "model", "../../host/planted-secret.txt"), {}),
        ["AssetFileDef", "InitializeTableFromTextFileV2"]),
    "GraphDef hidden in the checkpoint, run by DatasetFromGraph": (
        lambda tmp, p: (hostile.dataset_from_graph_savedmodel(tmp / "model", str(p.secret)), {}),
        ["DatasetFromGraph"]),
    "Abort (exit 0 mid-run)": (lambda tmp, p: (hostile.abort_savedmodel(tmp / "model"), {}), ["Abort"]),
    "write in a function no signature calls": (
        lambda tmp, p: (hostile.uncalled_function_savedmodel(tmp / "model", str(p.target)), {}), ["WriteFile"]),
    # One per class of op the old deny list missed.
    "files: ReadFile": (_op(lambda tf, x, p: tf.io.read_file(str(p.secret))), ["ReadFile"]),
    "files: MatchingFiles": (_op(lambda tf, x, p: tf.io.matching_files(f"{p.secret.parent}/*")), ["MatchingFiles"]),
    "files: GenerateVocabRemapping": (_op(lambda tf, x, p: tf.raw_ops.GenerateVocabRemapping(
        new_vocab_file=str(p.secret), old_vocab_file=str(p.secret), new_vocab_offset=0, num_new_vocab=1)[0]),
        ["GenerateVocabRemapping"]),
    "files: RecordInput": (_op(lambda tf, x, p: tf.raw_ops.RecordInput(file_pattern=str(p.secret))), ["RecordInput"]),
    "files: Skipgram (deprecated, injected into the protobuf)": (_skipgram, ["Skipgram"]),
    "files: ImmutableConst (memory-maps a file)": (_op(lambda tf, x, p: tf.raw_ops.ImmutableConst(
        dtype=tf.float32, shape=[1], memory_region_name=str(p.secret))), ["ImmutableConst"]),
    "files: FixedUnigramCandidateSampler with a vocab_file": (_op(
        lambda tf, x, p: tf.random.fixed_unigram_candidate_sampler(
            true_classes=tf.constant([[0]], tf.int64), num_true=1, num_sampled=1, unique=True, range_max=2,
            vocab_file=str(p.secret))[0]), ["FixedUnigramCandidateSampler"]),
    "datasets from files: MatchingFilesDataset": (_op(lambda tf, x, p: _cardinality(
        tf, tf.raw_ops.MatchingFilesDataset(patterns=[f"{p.secret.parent}/*"]))), ["MatchingFilesDataset"]),
    "datasets from services: DataServiceDatasetV4": (_op(lambda tf, x, p: _cardinality(
        tf, tf.data.experimental.service.from_dataset_id(
            processing_mode="parallel_epochs", service="grpc://localhost:1", dataset_id="d",
            element_spec=tf.TensorSpec([], tf.int64))._variant_tensor)), ["DataServiceDatasetV4"]),
    "datasets from services: RegisterDatasetV2": (_op(lambda tf, x, p: tf.data.experimental.service.register_dataset(
        "grpc://localhost:1", tf.data.Dataset.range(3))), ["RegisterDatasetV2"]),
    "datasets from services: DistributedSave": (_op(lambda tf, x, p: tf.raw_ops.DistributedSave(
        dataset=tf.data.Dataset.range(2)._variant_tensor, directory=str(p.target), address="localhost:1")),
        ["DistributedSave"]),
    "Python: PyFunc": (_op(lambda tf, x, p: tf.compat.v1.py_func(lambda v: v, [x], tf.float32)), ["PyFunc"]),
    "debugger taps: DebugIdentity to a file:// URL": (_op(lambda tf, x, p: tf.raw_ops.DebugIdentity(
        input=x, debug_urls=[f"file://{p.target}"])), ["DebugIdentity"]),
    "network: CollectiveReduceV2": (_op(lambda tf, x, p: tf.raw_ops.CollectiveReduceV2(
        input=x, group_size=2, group_key=1, instance_key=1, ordering_token=[], merge_op="Add", final_op="Id")),
        ["CollectiveReduceV2"]),
}


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plant:
    monkeypatch.setenv("OPTISMITH_TERMINATION_LOG", str(tmp_path / "termination-log"))
    return plant(tmp_path)


@pytest.fixture
def nothing_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the baseline is the first thing that loads a model: a refused model never gets there."""

    def refuse_to_load(*args: object, **kwargs: object) -> None:
        pytest.fail("the model was loaded before it was refused")

    monkeypatch.setattr(inspect_stage, "to_saved_model", refuse_to_load)


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_model_is_refused_before_any_of_its_ops_runs(
    case: str, tmp_path: Path, planted: Plant, nothing_loads: None, capsys: pytest.CaptureFixture[str]
) -> None:
    build, ops = CASES[case]
    model, overrides = build(tmp_path, planted)
    run_dir = tmp_path / "runs" / "gen-1"
    code, stderr = run_in_process(write_manifest(tmp_path / "m.yaml", model, run_dir, overrides), run_dir, capsys)
    assert code == 8, stderr
    assert "UnsafeModel" in stderr and "Traceback" not in stderr
    for op in ops:
        assert op in stderr, (op, stderr)
    record = open_storage(str(run_dir)).read_bytes("stages/inspect.json").decode()
    assert '"status": "failed"' in record and '"error_reason": "UnsafeModel"' in record
    assert not planted.target.exists(), "the model wrote a file on the host"
    assert files_holding(run_dir, planted.needles) == []
    assert files_holding(tmp_path / "termination-log", planted.needles) == []


# --- controls: each model does what it is refused for ---------------------------------------------------------


def _tf1_outputs(model: Path) -> dict[str, Any]:
    """Load with TensorFlow's own TF1 loader and run the serving signature, as TF Serving would."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(model))
        signature = meta.signature_def["serving_default"]
        fetches = {key: tensor.name for key, tensor in signature.outputs.items()}
        return dict(session.run(fetches, {signature.inputs["x"].name: np.ones([1, 4], np.float32)}))


def test_the_stock_loader_runs_a_hijacked_restore_op(tmp_path: Path) -> None:
    target = tmp_path / "written"
    _tf1_outputs(hostile.restore_op_savedmodel(tmp_path / "model", str(target)))
    assert target.read_bytes() == hostile.PAYLOAD


def test_restoring_a_hijacked_checkpoint_writes_the_file(tmp_path: Path) -> None:
    import tensorflow as tf

    target = tmp_path / "written"
    model = hostile.checkpoint_meta(tmp_path / "model", str(target))
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.train.import_meta_graph(str(model / "model.meta")).restore(session, str(model / "model"))
    assert target.read_bytes() == hostile.PAYLOAD


@pytest.mark.parametrize("variant", ["host file table", "absolute asset", "embedded graph"])
def test_the_leaking_models_put_the_secret_in_their_outputs(tmp_path: Path, variant: str) -> None:
    secret = plant(tmp_path).secret
    builders = {"host file table": hostile.table_leak_savedmodel, "absolute asset": hostile.asset_escape_savedmodel,
                "embedded graph": hostile.dataset_from_graph_savedmodel}
    outputs = _tf1_outputs(builders[variant](tmp_path / "model", str(secret)))
    leaked = b"".join(np.asarray(value).astype(object).ravel()[0] for key, value in outputs.items() if key != "y")
    assert FILE_SECRET.encode() in leaked


def test_a_function_no_signature_calls_still_runs_when_called(tmp_path: Path) -> None:
    import tensorflow as tf

    target = tmp_path / "written"
    loaded = tf.saved_model.load(str(hostile.uncalled_function_savedmodel(tmp_path / "model", str(target))))
    loaded.maintenance(tf.constant("owned"))
    assert target.read_text() == "owned"


def test_with_its_op_allowed_the_table_leak_reaches_the_run_directory(
    tmp_path: Path, planted: Plant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same secret check on a model whose op the spec allows: the secret lands in samples/outputs.npz
    (the check can fail, and allowOps is a real decision)."""
    model = hostile.table_leak_savedmodel(tmp_path / "model", str(planted.secret))
    run_dir = tmp_path / "runs" / "gen-1"
    manifest = write_manifest(tmp_path / "m.yaml", model, run_dir,
                              {"security": {"allowOps": ["InitializeTableFromTextFileV2"]}})
    code, stderr = run_in_process(manifest, run_dir, capsys)
    assert code == 0, stderr
    assert files_holding(run_dir, planted.needles) == [f"{run_dir}/samples/outputs.npz: {FILE_SECRET[:24]}"]
