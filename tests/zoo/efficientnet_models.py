"""EfficientNetB0 (keras.applications, the real architecture: swish, squeeze-excite, depthwise convolutions)
trained briefly on scikit-learn's bundled digits, upscaled to 32x32 RGB, so that its outputs mean something
(random weights give near-uniform class scores, whose top-1 is float noise, not a test of int8).

Four epochs leave the batch-norm moving statistics far from the data (held-out accuracy ~10% in inference
mode), so they are re-estimated on the training set in one pass (momentum 0): ~78% held-out accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
TRAIN = 1500
CALIBRATION = 200


def digits_rgb(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = tf.image.resize(digits.images[..., None].astype(np.float32) / 16.0 * 255.0, (size, size)).numpy()
    return np.repeat(images, 3, axis=-1).astype(np.float32), digits.target.astype(np.int64)


def efficientnet_b0_digits(dest: Path, epochs: int = 4, seed: int = 0) -> dict[str, Path | float]:
    """dest/model (SavedModel), dest/calibration.npz (x), dest/eval.npz (x, y); and the held-out accuracy."""
    import keras

    x, y = digits_rgb()
    keras.utils.set_random_seed(seed)
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(SIZE, SIZE, 3), classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x[:TRAIN], y[:TRAIN], epochs=epochs, batch_size=32, verbose=0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x[:TRAIN], training=True)  # one pass: the moving statistics become the training set's
    accuracy = float(np.mean(model.predict(x[TRAIN:], verbose=0).argmax(1) == y[TRAIN:]))
    dest.mkdir(parents=True, exist_ok=True)
    model.export(str(dest / "model"), verbose=False)
    np.savez(dest / "calibration.npz", x=x[:CALIBRATION])
    np.savez(dest / "eval.npz", x=x[TRAIN:], y=y[TRAIN:])
    return {"model": dest / "model", "calibration": dest / "calibration.npz", "eval": dest / "eval.npz",
            "accuracy": accuracy}
