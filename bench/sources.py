"""The models the benchmarks run and the data that goes with them, made locally (nothing is downloaded).

* digits: the README's CNN, trained by examples/digits/train.py on scikit-learn's bundled digits.
* mobilenetv2, resnet50: `keras.applications.X(weights=None)` with seeded random weights, exported as a
  SavedModel; calibration and evaluation data are seeded random images put through the application's
  own `preprocess_input`. Without trained weights there are no labels: accuracy is agreement with the
  source model's top-1, which int8 variants of a random-weight network can fail where a trained one
  would not (its class scores are nearly uniform).
* lstm, transformer, efficientnetb0: bench/sources_zoo.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, csv_words

CNN_NAMES = ("digits", "mobilenetv2", "resnet50")
ZOO_NAMES = ("lstm", "transformer", "efficientnetb0")  # bench/sources_zoo.py
MODEL_NAMES = CNN_NAMES + ZOO_NAMES


def model_names(text: str) -> list[str]:
    """argparse type for --models: comma-separated names from MODEL_NAMES."""
    names = csv_words(text)
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown}: use {', '.join(MODEL_NAMES)}")
    return names
IMAGE_SAMPLES = 64  # calibration and evaluation images for the ImageNet models each
SEED = 0


@dataclass(frozen=True)
class Source:
    name: str
    saved_model: Path
    calibration: Path  # .npz with x
    evaluation: Path  # .npz with x (and y when labelled)
    labelled: bool
    calibration_samples: int
    evaluation_samples: int


def digits(workdir: Path) -> Source:
    from examples.digits.train import build_and_train

    out = workdir / "digits"
    if not (out / "model" / "saved_model.pb").exists():
        build_and_train(out, epochs=30, seed=SEED)
    return Source("digits", out / "model", out / "data" / "calibration.npz", out / "data" / "eval.npz",
                  labelled=True, calibration_samples=200, evaluation_samples=2000)


def _application(name: str) -> tuple[Callable[..., Any], Callable[[Any], Any]]:
    import keras

    applications: dict[str, tuple[Callable[..., Any], Callable[[Any], Any]]] = {
        "mobilenetv2": (keras.applications.MobileNetV2, keras.applications.mobilenet_v2.preprocess_input),
        "resnet50": (keras.applications.ResNet50, keras.applications.resnet50.preprocess_input),
    }
    return applications[name]


def keras_application(name: str, workdir: Path) -> Source:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    out = workdir / name
    saved_model = out / "model"
    if not (saved_model / "saved_model.pb").exists():
        build, preprocess = _application(name)
        keras.utils.set_random_seed(SEED)
        model = build(weights=None)
        model.export(str(saved_model), verbose=False)
        rng = np.random.default_rng(SEED)
        for part in ("calibration", "eval"):
            images = rng.uniform(0.0, 255.0, size=(IMAGE_SAMPLES, 224, 224, 3)).astype("float32")
            np.savez(out / f"{part}.npz", x=np.asarray(preprocess(images), dtype="float32"))
    return Source(name, saved_model, out / "calibration.npz", out / "eval.npz", labelled=False,
                  calibration_samples=IMAGE_SAMPLES, evaluation_samples=IMAGE_SAMPLES)


def make_source(name: str, workdir: Path) -> Source:
    if name == "digits":
        return digits(workdir)
    if name in ZOO_NAMES:
        from bench.sources_zoo import make_zoo_source

        return make_zoo_source(name, workdir)
    if name in CNN_NAMES:
        return keras_application(name, workdir)
    raise SystemExit(f"unknown model {name!r}: use one of {', '.join(MODEL_NAMES)}")


def make_source_in_subprocess(name: str, workdir: Path) -> Source:
    """make_source in a child process, so that the caller never imports TensorFlow. On Linux a process
    inherits the peak RSS of the one that started it in its own ru_maxrss, so stage processes started by a
    parent that had TensorFlow loaded would all report at least the parent's memory."""
    done = subprocess.run([sys.executable, "-m", "bench.sources", name, str(workdir)], capture_output=True,
                          text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"making the {name} model failed:\n{done.stderr[-3000:]}")
    fields = json.loads(done.stdout.strip().splitlines()[-1])
    return Source(**{key: Path(value) if isinstance(value, str) and key != "name" else value
                     for key, value in fields.items()})


def manifest(source: Source, output: Path, *, benchmark: dict[str, Any] | None = None,
             selection_batch: int = 1) -> dict[str, Any]:
    """The ModelOptimization a user would write for this model; `benchmark` overrides spec.benchmark."""
    spec: dict[str, Any] = {
        "model": {"uri": str(source.saved_model)},
        "calibration": {"uri": str(source.calibration), "samples": source.calibration_samples},
        "evaluation": {"uri": str(source.evaluation), "samples": source.evaluation_samples},
        "selection": {"objective": "latencyP50", "batchSize": selection_batch},
        "output": {"uri": str(output)},
    }
    if benchmark:
        spec["benchmark"] = benchmark
    return {"apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": f"bench-{source.name}"}, "spec": spec}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make a bench model and its data; print where they are (JSON).")
    parser.add_argument("model", choices=MODEL_NAMES)
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    source = make_source(args.model, args.workdir)
    print(json.dumps({key: str(value) if isinstance(value, Path) else value
                      for key, value in dataclasses.asdict(source).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
