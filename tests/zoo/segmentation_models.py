"""Zoo models with dense outputs: a small U-Net (per-pixel class scores), random seeded weights."""

from __future__ import annotations

from pathlib import Path

SIZE = 32
CLASSES = 3


def unet(out: Path) -> Path:
    """An encoder-decoder with a skip connection, [N, 32, 32, 3] -> [N, 32, 32, 3] softmax per pixel;
    exported as a SavedModel at `out`."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name="image")
    down = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    bottom = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.MaxPooling2D()(down))
    up = layers.Conv2DTranspose(8, 2, strides=2, padding="same")(bottom)
    merged = layers.Concatenate()([up, down])
    hidden = layers.Conv2D(8, 3, padding="same", activation="relu")(merged)
    outputs = layers.Conv2D(CLASSES, 1, activation="softmax", name="mask")(hidden)
    keras.Model(inputs, outputs, name="unet").export(str(out), verbose=False)
    return out
