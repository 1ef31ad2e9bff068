"""Real text models still run: a vocabulary lookup table read from a file in the model's own assets/ (TF2 and TF1
exports), and one filled from the model's own constants (Keras TextVectorization). The policy refuses tables from
host files, not tables."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.models.policy import scan_saved_model
from optismith.stages.freeze import FreezeStage
from optismith.stages.inspect import InspectStage
from tests.security import hostile
from tests.stages.tf_sources import context, run

pytestmark = pytest.mark.tf

VOCAB = ["<unk>", "the", "model", "is", "a", "program", "not", "sandbox"]


def vocabulary_model(dest: Path) -> Path:
    """tokens -> StaticHashTable(TextFileInitializer(vocab.txt)) ids -> Embedding -> pooling -> Dense;
    tf.saved_model.save copies vocab.txt into the model's assets/."""
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.txt"
        vocab_file.write_text("\n".join(VOCAB) + "\n")

        class TextModel(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                initializer = tf.lookup.TextFileInitializer(
                    str(vocab_file), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                    tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
                self.table = tf.lookup.StaticHashTable(initializer, default_value=0)
                self.net = keras.Sequential([keras.Input(shape=(None,), dtype="int64"),
                                             keras.layers.Embedding(len(VOCAB), 8),
                                             keras.layers.GlobalAveragePooling1D(),
                                             keras.layers.Dense(3, activation="softmax")])

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="tokens")])
            def serve(self, tokens: Any) -> dict[str, Any]:
                return {"probs": self.net(self.table.lookup(tokens))}

        module = TextModel()
        tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest


def text_vectorization_model(dest: Path) -> Path:
    import keras

    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    ids = keras.layers.TextVectorization(vocabulary=VOCAB[1:6], output_sequence_length=6)(inputs)
    hidden = keras.layers.LSTM(4)(keras.layers.Embedding(len(VOCAB), 8)(ids))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.export(str(dest), verbose=False)
    return dest


def test_a_vocabulary_from_the_models_own_assets_runs_through_inspect_and_freeze(tmp_path: Path) -> None:
    import tensorflow as tf

    model = vocabulary_model(tmp_path / "model")
    assert (model / "assets" / "vocab.txt").is_file()
    ctx = context(model, tmp_path)
    inspected = run(ctx, InspectStage)
    assert inspected.status == "succeeded" and inspected.payload["scan"]["findings"] == 0
    assert inspected.payload["scan"]["functions_checked"] > 0
    frozen = run(ctx, FreezeStage)
    assert frozen.status == "succeeded" and frozen.message.startswith("frozen: "), frozen.message
    baseline = tf.saved_model.load(str(tmp_path / "run" / "variants" / "tf-savedmodel" / "saved_model"))
    probs = baseline.signatures["serving_default"](tokens=tf.constant([["the", "model", "zzz"]]))["probs"]
    assert probs.shape == (1, 3) and np.isclose(float(tf.reduce_sum(probs)), 1.0, atol=1e-5)


def test_a_tf1_vocabulary_asset_passes_and_the_same_model_with_a_host_path_does_not(tmp_path: Path) -> None:
    model = hostile.asset_escape_savedmodel(tmp_path / "asset", "vocab.txt")
    (model / "assets" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    assert scan_saved_model(model).findings == []
    inspected = run(context(model, tmp_path / "a"), InspectStage)
    assert inspected.status == "succeeded" and inspected.payload["samples"]["written"] is True


def test_a_table_from_the_models_constants_passes(tmp_path: Path) -> None:
    model = text_vectorization_model(tmp_path / "model")
    report = scan_saved_model(model)
    assert report.findings == [] and report.ops_checked > 100
    assert run(context(model, tmp_path), InspectStage).status == "succeeded"
