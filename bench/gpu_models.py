"""The GPU bench's ImageNet-shaped models, and labelled data with real margins for their accuracy gate.

Without trained weights (nothing is downloaded) a `keras.applications` network is useless for judging an
accuracy gate: with identity BatchNorm statistics every image gets the same class, and once the BatchNorms
are calibrated on data (round 1 of the GPU work) its 1000 class scores are nearly tied, so TF32 and fp16
already flip the top-1 of 10-20% of the images. A trained network has margins. This module gives one:

* the convolutional trunk is the application's own (seeded random weights), with every BatchNorm's moving
  statistics set to those of its input on calibration images (so each layer's output varies with the image);
* the classifier keeps its 1000 outputs, but only the first 10 are fitted (ridge regression on the trunk's
  pooled features of 32 training images per class) to a 10-class task of synthetic images whose classes
  differ in colour and layout; the other 990 get weight 0 and bias -20 (they never win);
* evaluation: 256 held-out images of the same task, with labels.

What the gate then shows: whether a precision (TF32, fp16) flips decisions that have margins, the way a
trained network's do. It says nothing about ImageNet accuracy. The images are a pure function of a seed
(`labelled_images`), so the GPU machine regenerates them instead of carrying 154 MB of float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = 10
TRAIN_STEPS = int(os.environ.get("OPTISMITH_BENCH_TRAIN_STEPS", "60"))
TRAIN_BATCH = 32
EVAL_SAMPLES = 256
CALIBRATION_SAMPLES = 64
IMAGE = 224
SEEDS = {"prototypes": 7, "train": 11, "eval": 12, "calibration": 13}


def _prototypes() -> np.ndarray:
    """One smooth 224x224x3 pattern per class (7x7 random colours, upsampled): classes differ in colour and
    layout, as a trained network's classes differ in what it has learnt to look for."""
    rng = np.random.default_rng(SEEDS["prototypes"])
    low = rng.uniform(0.0, 255.0, size=(CLASSES, 7, 7, 3))
    return np.repeat(np.repeat(low, IMAGE // 7, axis=1), IMAGE // 7, axis=2)


def labelled_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 NHWC images, int64 labels): a class's prototype under block noise and pixel noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % CLASSES
    prototypes = _prototypes()
    blocks = rng.uniform(0.0, 255.0, size=(count, 14, 14, 3))
    blocks = np.repeat(np.repeat(blocks, IMAGE // 14, axis=1), IMAGE // 14, axis=2)
    pixels = rng.normal(0.0, 25.0, size=(count, IMAGE, IMAGE, 3))
    images = 0.5 * prototypes[labels] + 0.5 * blocks + pixels
    return np.clip(images, 0, 255).astype(np.uint8), labels


def preprocess(name: str, images: np.ndarray) -> np.ndarray:
    """`keras.applications.<name>.preprocess_input`, in numpy (the GPU machine has no TensorFlow)."""
    x = images.astype(np.float32)
    if name == "mobilenetv2":  # mode "tf"
        return (x / np.float32(127.5)) - np.float32(1.0)
    if name == "resnet50":  # mode "caffe": RGB -> BGR, minus the ImageNet mean
        return np.ascontiguousarray(x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32))
    raise ValueError(f"no preprocessing for {name!r}")


def evaluation_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = labelled_images(EVAL_SAMPLES, SEEDS["eval"])
    return preprocess(name, images), labels


def _calibrate_batchnorms(model: Any, images: np.ndarray) -> None:
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)  # one training-mode pass: moving statistics := this batch's, layer by layer
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def _train(model: Any, name: str) -> dict[str, float]:
    """A few epochs of Adam on freshly generated images (a new seed each step: nothing to overfit), then
    the BatchNorm statistics set from one more batch (their moving averages would still be warming up)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = []
    for step in range(TRAIN_STEPS):
        images, labels = labelled_images(TRAIN_BATCH, SEEDS["train"] * 100_000 + step)
        loss, accuracy = model.train_on_batch(preprocess(name, images), labels)
        history.append((float(loss), float(accuracy)))
    calibration, _ = labelled_images(CALIBRATION_SAMPLES, SEEDS["calibration"])
    _calibrate_batchnorms(model, preprocess(name, calibration))
    last = history[-10:]
    return {"train_steps": TRAIN_STEPS, "train_batch": TRAIN_BATCH,
            "train_loss_last10": float(np.mean([h[0] for h in last])),
            "train_accuracy_last10": float(np.mean([h[1] for h in last]))}


def make_application(name: str, out: Path) -> dict[str, Any]:
    """Write <out>/model (SavedModel) and <out>/eval.npz (x, y); returns what was measured on them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    build = {"mobilenetv2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50}[name]
    keras.utils.set_random_seed(0)
    model = build(weights=None)
    facts = _train(model, name)
    x, y = evaluation_arrays(name)
    scores = model.predict(x, batch_size=32, verbose=0)
    ordered = np.sort(scores, axis=1)
    facts.update({"eval_accuracy": float(np.mean(scores.argmax(1) == y)),
                  "eval_top1_margin_median": float(np.median(ordered[:, -1] - ordered[:, -2])),
                  "eval_top1_prob_median": float(np.median(ordered[:, -1]))})
    out.mkdir(parents=True, exist_ok=True)
    model.export(str(out / "model"), verbose=False)
    np.savez(out / "eval.npz", x=x, y=y)
    return facts
