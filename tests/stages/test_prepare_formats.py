"""Every source format, end to end through inspect -> freeze -> optimize: the baseline must compute what
the user's model computes, and the frozen and optimized graphs what the baseline computes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.runs.layout import variant_artifact
from tests.stages.tf_sources import (
    GRAPH_INPUTS,
    GRAPH_OUTPUTS,
    context,
    frozen_pb,
    keras_h5,
    prepare,
    tar_gz,
    tf1_checkpoint,
    zip_dir,
)

pytestmark = pytest.mark.tf


def _saved_model_outputs(directory: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    serving = loaded.signatures["serving_default"]
    return lambda x: serving(image=tf.constant(x))["output_0"].numpy()


def _keras_outputs(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import keras

    model = keras.saving.load_model(path, compile=False)
    return lambda x: np.asarray(model(x, training=False))


def _graph_outputs(graph_def: Any) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    return lambda x: session.run("probs:0", {"x:0": x})


def _frozen_pb_outputs(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    return _graph_outputs(graph_def)


def _checkpoint_outputs(directory: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(directory / "model.meta"))
        saver.restore(session, str(directory / "model"))
    return lambda x: session.run("probs:0", {"x:0": x})


@dataclass
class Source:
    """A model in some format: where it is, what the spec must add, and how to run the original."""

    uri: Path
    fmt: str
    reference: Callable[[np.ndarray], np.ndarray]
    model: dict[str, Any] = field(default_factory=dict)
    folds_batch_norm: bool = False


def _savedmodel(digits: Path, tmp: Path) -> Source:
    return Source(digits / "model", "savedmodel", _saved_model_outputs(digits / "model"))


def _keras(digits: Path, tmp: Path) -> Source:
    return Source(digits / "model.keras", "keras", _keras_outputs(digits / "model.keras"))


def _h5(digits: Path, tmp: Path) -> Source:
    path = keras_h5(digits, tmp)
    return Source(path, "keras", _keras_outputs(path))


def _frozen(digits: Path, tmp: Path) -> Source:
    path = frozen_pb(tmp / "graph")
    return Source(
        path, "frozen-graph", _frozen_pb_outputs(path), model={"inputs": GRAPH_INPUTS, "outputs": GRAPH_OUTPUTS}
    )


def _checkpoint(digits: Path, tmp: Path) -> Source:
    directory = tf1_checkpoint(tmp / "ckpt")
    return Source(
        directory,
        "checkpoint",
        _checkpoint_outputs(directory),
        model={"inputs": [{**GRAPH_INPUTS[0], "name": "x:0"}], "outputs": ["probs:0"]},
        folds_batch_norm=True,
    )


def _tar_gz_savedmodel(digits: Path, tmp: Path) -> Source:
    archive = tar_gz(digits / "model", tmp / "model.tar.gz")
    return Source(archive, "savedmodel", _saved_model_outputs(digits / "model"))


def _zip_checkpoint(digits: Path, tmp: Path) -> Source:
    directory = tf1_checkpoint(tmp / "ckpt")
    archive = zip_dir(directory, tmp / "ckpt.zip")
    return Source(
        archive,
        "checkpoint",
        _checkpoint_outputs(directory),
        model={"format": "checkpoint", "inputs": GRAPH_INPUTS, "outputs": GRAPH_OUTPUTS},
        folds_batch_norm=True,
    )


SOURCES = {
    "savedmodel": _savedmodel,
    "keras": _keras,
    "h5": _h5,
    "frozen-graph": _frozen,
    "checkpoint": _checkpoint,
    "savedmodel.tar.gz": _tar_gz_savedmodel,
    "checkpoint.zip": _zip_checkpoint,
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_source_format_end_to_end(kind: str, digits_dir: Path, tmp_path: Path) -> None:
    source = SOURCES[kind](digits_dir, tmp_path / "src")
    ctx = context(source.uri, tmp_path, model=source.model)
    records = prepare(ctx)

    info = records["inspect"].payload["source"]
    assert info["format"] == source.fmt
    assert info["op_count"] > 0 and info["parameter_count"] > 0 and info["flops_per_sample"] > 0
    assert ctx.store.exists(variant_artifact("tf-savedmodel") + "/saved_model.pb")

    # The baseline computes what the user's model computes (normalization lost nothing).
    inputs = np.load(ctx.fetch("samples/inputs.npz"))
    outputs = np.load(ctx.fetch("samples/outputs.npz"))
    assert len(inputs.files) == 1 and len(outputs.files) == 1
    x = inputs[inputs.files[0]]
    assert x.shape[0] == 32
    np.testing.assert_allclose(outputs[outputs.files[0]], source.reference(x), atol=1e-5)

    frozen = records["freeze"].variants[0]
    optimized = records["optimize"].variants[0]
    for variant in (frozen, optimized):
        assert variant.status == "built", variant.reason
        assert variant.numerics is not None and variant.numerics.relative_error < 1e-4
        assert variant.numerics.top1_agreement == 1.0
    assert optimized.op_count is not None and frozen.op_count is not None
    assert optimized.op_count < frozen.op_count, (frozen.op_count, optimized.op_count)
    folding = optimized.details["optimize_for_inference"]
    if source.folds_batch_norm:
        assert folding["status"] == "applied" and folding["batch_norms_folded"] == 1
    else:
        assert folding["status"] == "no-op"
