"""The bench's zoo models beyond the CNNs, made locally (nothing is downloaded), selectable with --models:

* lstm: Embedding -> bidirectional LSTM -> Dense, a text classifier on int32 tokens, trained a few steps on
  synthetic token data (the label is whether a marker token occurs), so its outputs are not uniform.
* transformer: a small encoder (Embedding + positions, MultiHeadAttention, LayerNorm, GELU feed-forward,
  pooled to a Dense classifier) on int32 tokens, trained briefly on the same kind of synthetic data.
* efficientnetb0: `keras.applications.EfficientNetB0(weights=None)` at 224x224, seeded random weights,
  seeded random images through its own `preprocess_input` (no labels: accuracy is agreement).

`tiny=True` makes each one small and quick (tests only: the shapes, not the speed, are what they check).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.sources import IMAGE_SAMPLES, SEED, ZOO_NAMES, Source

TEXT_SAMPLES = 256  # calibration and evaluation sequences each
VOCABULARY = 1000
SEQUENCE = 64
MARKER = 7  # the token whose presence is the label


def _tokens(rng: np.random.Generator, samples: int, sequence: int, vocabulary: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(1, vocabulary, size=(samples, sequence), dtype=np.int32)
    x[rng.random(samples) < 0.5, rng.integers(0, sequence)] = MARKER
    return x, (x == MARKER).any(axis=1).astype(np.int64)


def _text_model(name: str, workdir: Path, tiny: bool) -> Source:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    out = workdir / name
    saved_model = out / "model"
    samples = 32 if tiny else TEXT_SAMPLES
    if not (saved_model / "saved_model.pb").exists():
        keras.utils.set_random_seed(SEED)
        sequence, vocabulary = (8, 50) if tiny else (SEQUENCE, VOCABULARY)
        model = (_lstm if name == "lstm" else _transformer)(keras, sequence, vocabulary, tiny)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(SEED)
        x, y = _tokens(rng, 8 * samples, sequence, vocabulary)
        model.fit(x, y, epochs=1 if tiny else 3, batch_size=32, verbose=0)
        model.export(str(saved_model), verbose=False)
        for part in ("calibration", "eval"):
            x, y = _tokens(rng, samples, sequence, vocabulary)
            np.savez(out / f"{part}.npz", x=x, y=y)
    return Source(name, saved_model, out / "calibration.npz", out / "eval.npz", labelled=True,
                  calibration_samples=samples, evaluation_samples=samples)


def _lstm(keras: Any, sequence: int, vocabulary: int, tiny: bool) -> Any:
    layers = keras.layers
    units = 8 if tiny else 64
    inputs = keras.Input(shape=(sequence,), dtype="int32", name="tokens")
    hidden = layers.Embedding(vocabulary, 16 if tiny else 64)(inputs)
    hidden = layers.Bidirectional(layers.LSTM(units))(hidden)
    outputs = layers.Dense(2, activation="softmax")(hidden)
    return keras.Model(inputs, outputs, name="lstm")


def _transformer(keras: Any, sequence: int, vocabulary: int, tiny: bool) -> Any:
    layers = keras.layers
    width, heads, blocks = (16, 2, 1) if tiny else (128, 4, 2)
    inputs = keras.Input(shape=(sequence,), dtype="int32", name="tokens")
    positions = layers.Embedding(sequence, width)(keras.ops.arange(sequence))
    hidden = layers.Embedding(vocabulary, width)(inputs) + positions
    for _ in range(blocks):
        attended = layers.MultiHeadAttention(heads, width // heads)(hidden, hidden)
        hidden = layers.LayerNormalization(epsilon=1e-6)(hidden + attended)
        fed = layers.Dense(width, activation="gelu")(layers.Dense(4 * width, activation="gelu")(hidden))
        hidden = layers.LayerNormalization(epsilon=1e-6)(hidden + fed)
    pooled = layers.GlobalAveragePooling1D()(hidden)
    outputs = layers.Dense(2, activation="softmax")(pooled)
    return keras.Model(inputs, outputs, name="transformer")


def efficientnetb0(workdir: Path, tiny: bool = False) -> Source:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    out = workdir / "efficientnetb0"
    saved_model = out / "model"
    size, samples = (32, 4) if tiny else (224, IMAGE_SAMPLES)
    if not (saved_model / "saved_model.pb").exists():
        keras.utils.set_random_seed(SEED)
        model = keras.applications.EfficientNetB0(weights=None, input_shape=(size, size, 3))
        model.export(str(saved_model), verbose=False)
        rng = np.random.default_rng(SEED)
        for part in ("calibration", "eval"):
            images = rng.uniform(0.0, 255.0, size=(samples, size, size, 3)).astype("float32")
            np.savez(out / f"{part}.npz",
                     x=np.asarray(keras.applications.efficientnet.preprocess_input(images), dtype="float32"))
    return Source("efficientnetb0", saved_model, out / "calibration.npz", out / "eval.npz", labelled=False,
                  calibration_samples=samples, evaluation_samples=samples)


def make_zoo_source(name: str, workdir: Path, tiny: bool = False) -> Source:
    if name == "efficientnetb0":
        return efficientnetb0(workdir, tiny)
    if name in ("lstm", "transformer"):
        return _text_model(name, workdir, tiny)
    raise SystemExit(f"unknown zoo model {name!r}: use one of {', '.join(ZOO_NAMES)}")
