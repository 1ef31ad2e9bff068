"""Small models in every source format the inspect stage accepts, and a way to run the prepare stages
(inspect, freeze, optimize) on them in a temporary run directory."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from optismith.results import StageRecord
from optismith.runs.layout import stage_record
from optismith.runs.stage import Stage, StageContext
from optismith.spec import ModelOptimization
from optismith.storage.local import LocalStorage

TF_VARIANTS = ["tf-savedmodel", "tf-frozen", "tf-grappler"]
GRAPH_INPUTS = [{"name": "x", "dtype": "float32", "shape": [-1, 8, 8, 1]}]
GRAPH_OUTPUTS = ["probs"]


def manifest(uri: str | Path, output: Path, **spec: Any) -> ModelOptimization:
    model = {"uri": str(uri), **spec.pop("model", {})}
    return ModelOptimization.model_validate(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "tf-sources"},
            "spec": {
                "model": model,
                "output": {"uri": str(output)},
                "variants": spec.pop("variants", TF_VARIANTS),
                "calibration": {"synthetic": True},
                **spec,
            },
        }
    )


def context(uri: str | Path, tmp_path: Path, **spec: Any) -> StageContext:
    (tmp_path / "work").mkdir(parents=True, exist_ok=True)
    return StageContext(
        manifest=manifest(uri, tmp_path / "runs", **spec),
        store=LocalStorage(tmp_path / "run"),
        workdir=tmp_path / "work",
    )


def run(ctx: StageContext, stage: type[Stage]) -> StageRecord:
    """Run a stage and store its record where later stages look for it (what the pipeline runner does)."""
    record = stage().run(ctx)
    ctx.store.write_bytes(stage_record(record.stage), record.model_dump_json().encode())
    return record


def prepare(ctx: StageContext) -> dict[str, StageRecord]:
    from optismith.stages.freeze import FreezeStage
    from optismith.stages.inspect import InspectStage
    from optismith.stages.optimize import OptimizeStage

    return {stage.name: run(ctx, stage) for stage in (InspectStage, FreezeStage, OptimizeStage)}


# --- sources -------------------------------------------------------------------------------------


def keras_h5(digits_dir: Path, dest: Path) -> Path:
    import keras

    model = keras.saving.load_model(digits_dir / "model.keras", compile=False)
    path = dest / "digits.h5"
    model.save(path)
    return path


def _tf1_classifier(tf: Any, x: Any, batch_norm: bool, rng: np.random.Generator, variables: bool) -> Any:
    """conv3x3(4) [-> FusedBatchNormV3] -> relu -> flatten -> dense(10) -> softmax, named 'probs'."""

    def weight(name: str, value: np.ndarray) -> Any:
        value = value.astype(np.float32)
        if variables:
            return tf.compat.v1.get_variable(name, initializer=tf.constant(value))
        return tf.constant(value, name=name)

    hidden = tf.nn.conv2d(x, weight("kernel", rng.normal(0, 0.5, (3, 3, 1, 4))), 1, "SAME")
    if batch_norm:
        hidden, _, _ = tf.compat.v1.nn.fused_batch_norm(
            hidden,
            weight("gamma", rng.uniform(0.5, 1.5, 4)),
            weight("beta", rng.normal(0, 0.1, 4)),
            weight("moving_mean", rng.normal(0, 0.2, 4)),
            weight("moving_variance", rng.uniform(0.5, 2, 4)),
            is_training=False,
        )
    hidden = tf.reshape(tf.nn.relu(hidden), [-1, 8 * 8 * 4])
    logits = tf.matmul(hidden, weight("dense", rng.normal(0, 0.2, (256, 10)))) + weight("bias", rng.normal(0, 0.1, 10))
    return tf.nn.softmax(logits, name="probs")


def frozen_pb(dest: Path, seed: int = 0) -> Path:
    """A frozen GraphDef (weights as constants) with input 'x' [-1,8,8,1] and output 'probs'."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name="x")
        _tf1_classifier(tf, x, batch_norm=False, rng=np.random.default_rng(seed), variables=False)
    dest.mkdir(parents=True, exist_ok=True)
    tf.io.write_graph(graph.as_graph_def(), str(dest), "frozen.pb", as_text=False)
    return dest / "frozen.pb"


def tf1_checkpoint(dest: Path, seed: int = 0) -> Path:
    """A TF1 checkpoint (model.meta, model.index, model.data-*, checkpoint) of a graph with a
    FusedBatchNormV3, for the optimize_for_inference folding. Returns the directory."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name="x")
        _tf1_classifier(tf, x, batch_norm=True, rng=np.random.default_rng(seed), variables=True)
        init = tf.compat.v1.global_variables_initializer()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(init)
            dest.mkdir(parents=True, exist_ok=True)
            saver.save(session, str(dest / "model"))
    return dest


def write_file_saved_model(dest: Path, target: Path) -> Path:
    """A SavedModel whose serving function also writes its input to `target` (tf.io.write_file)."""
    import tensorflow as tf

    class Leaky(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            tf.io.write_file(str(target), tf.io.serialize_tensor(x))
            return {"y": x * self.scale}

    module = Leaky()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest


def tar_gz(directory: Path, dest: Path, arcname: str = "model") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(directory, arcname=arcname)
    return dest


def zip_dir(directory: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory).as_posix())
    return dest


def copy_tree(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
