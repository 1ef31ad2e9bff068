"""Zoo models with several inputs and outputs, saved as a Keras .h5 file, random seeded weights."""

from __future__ import annotations

from pathlib import Path


def two_in_two_out(out: Path) -> Path:
    """An image [N, 16, 16, 1] and a feature vector [N, 8] in; class scores [N, 4] and a score [N, 1] out;
    saved as .h5 at `out`."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    image = keras.Input(shape=(16, 16, 1), name="image")
    features = keras.Input(shape=(8,), name="features")
    seen = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu")(image))
    joined = layers.Concatenate()([seen, layers.Dense(8, activation="relu")(features)])
    classes = layers.Dense(4, activation="softmax", name="classes")(joined)
    score = layers.Dense(1, name="score")(joined)
    keras.Model([image, features], [classes, score], name="two_in_two_out").save(str(out))
    return out
