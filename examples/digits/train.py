"""Train a small CNN on scikit-learn's bundled digits (no downloads) and write what the demo needs.

    python examples/digits/train.py [--out examples/digits] [--epochs 30]

Writes <out>/model/ (a SavedModel with a serving_default signature), <out>/model.keras,
<out>/data/calibration.npz (x) and <out>/data/eval.npz (x, y).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_and_train(out: Path, epochs: int = 30, seed: int = 0) -> dict[str, float]:
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras = tf.keras
    keras.utils.set_random_seed(seed)
    digits = load_digits()
    x = (digits.images.astype("float32") / 16.0)[..., None]  # (n, 8, 8, 1) in [0, 1]
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)

    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="digits_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0, validation_split=0.1)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)

    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    model.export(str(out / "model"), verbose=False)  # SavedModel with serving_default
    model.save(out / "model.keras")
    rng = np.random.default_rng(seed)
    calibration = x_train[rng.choice(len(x_train), size=min(200, len(x_train)), replace=False)]
    np.savez(out / "data" / "calibration.npz", x=calibration)
    np.savez(out / "data" / "eval.npz", x=x_test, y=y_test)
    return {"accuracy": float(accuracy), "train_seconds": seconds, "test_samples": float(len(x_test))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    info = build_and_train(args.out, args.epochs)
    print(f"digits CNN: test accuracy {info['accuracy']:.4f} on {int(info['test_samples'])} samples, "
          f"trained in {info['train_seconds']:.1f}s -> {args.out / 'model'}")


if __name__ == "__main__":
    main()
