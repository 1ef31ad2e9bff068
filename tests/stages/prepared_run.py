"""A run directory as inspect and freeze leave it, made directly from the digits model, so the
quantize and convert tests do not depend on those stages:

    variants/tf-savedmodel/saved_model   the SavedModel (serving_default)
    variants/tf-frozen/frozen.pb, io.json
    samples/inputs.npz, samples/outputs.npz   32 eval images and the SavedModel's outputs on them
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from optismith.runs.stage import StageContext
from optismith.spec import ModelOptimization
from optismith.storage.local import LocalStorage

SAMPLES = 32


def prepare_run(digits_dir: Path, run_dir: Path) -> Path:
    x = np.load(digits_dir / "data" / "eval.npz")["x"][:SAMPLES]
    return prepare_run_from(digits_dir / "model", {"image": x}, run_dir)


def prepare_run_from(source: Path, sample_inputs: dict[str, np.ndarray], run_dir: Path) -> Path:
    """Copy a SavedModel in as the baseline, freeze its serving signature, and record its outputs."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    saved_model = run_dir / "variants" / "tf-savedmodel" / "saved_model"
    shutil.copytree(source, saved_model)
    loaded = tf.saved_model.load(str(saved_model))  # the signature only weakly references its variables
    serving = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(serving)
    frozen_dir = run_dir / "variants" / "tf-frozen"
    frozen_dir.mkdir(parents=True)
    (frozen_dir / "frozen.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())

    input_specs = serving.structured_input_signature[1]
    output_specs = serving.structured_outputs
    graph_inputs = [t for t in frozen.inputs if t.dtype != tf.resource]
    io = {
        "inputs": [
            _describe(name, tensor.name, input_specs[name])
            for name, tensor in zip(sorted(input_specs), graph_inputs, strict=True)
        ],
        "outputs": [
            _describe(name, tensor.name, output_specs[name])
            for name, tensor in zip(sorted(output_specs), frozen.outputs, strict=True)
        ],
    }
    (frozen_dir / "io.json").write_text(json.dumps(io))

    feeds = {name: tf.constant(array) for name, array in sample_inputs.items()}
    outputs: dict[str, Any] = {name: value.numpy() for name, value in serving(**feeds).items()}
    (run_dir / "samples").mkdir()
    np.savez(run_dir / "samples" / "inputs.npz", **dict[str, Any](sample_inputs))
    np.savez(run_dir / "samples" / "outputs.npz", **outputs)
    return run_dir


def _describe(name: str, tensor: str, spec: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tensor": tensor,
        "dtype": spec.dtype.name,
        "shape": [None if d is None else int(d) for d in spec.shape],
    }


def make_context(run_dir: Path, workdir: Path, variants: list[str], **calibration: Any) -> StageContext:
    manifest = ModelOptimization.model_validate(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "digits"},
            "spec": {
                "model": {"uri": str(run_dir / "variants" / "tf-savedmodel" / "saved_model")},
                "output": {"uri": str(run_dir.parent)},
                "variants": variants,
                "calibration": calibration,
            },
        }
    )
    workdir.mkdir(parents=True, exist_ok=True)
    return StageContext(manifest=manifest, store=LocalStorage(run_dir), workdir=workdir)


def copy_run(run_dir: Path, target: Path) -> Path:
    """A private copy, for tests that build variants into it."""
    shutil.copytree(run_dir, target)
    return target
