"""Recurrent zoo models: Keras 3 text classifiers (int32 token ids -> Embedding -> (Bi)LSTM/GRU -> Dense)
and a TF1 graph whose recurrence is a v1 `while` loop (Enter/Merge/Switch/NextIteration/Exit), as old
checkpoints and frozen graphs carry it. Small (vocab 100, 16 steps, 16 units) so a build takes seconds;
random weights: the gate compares each variant with the source, not with labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 100
SEQUENCE = 16
UNITS = 16
CLASSES = 4

# The spec's model section for the TF1 graph (a frozen GraphDef names no signature).
WHILE_LOOP_INPUTS = [{"name": "tokens", "dtype": "int32", "shape": [-1, SEQUENCE]}]
WHILE_LOOP_OUTPUTS = ["probs"]


def keras_text_classifier(dest: Path, cell: str, *, bidirectional: bool = False, seed: int = 0) -> Path:
    """A SavedModel (Keras 3 `model.export`) of tokens [N, 16] int32 -> probs [N, 4]; `cell` is "lstm" or
    "gru"."""
    import keras

    keras.utils.set_random_seed(seed)
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](UNITS)
    tokens = keras.Input(shape=(SEQUENCE,), dtype="int32", name="tokens")
    hidden = keras.layers.Embedding(VOCAB, UNITS)(tokens)
    hidden = (keras.layers.Bidirectional(layer) if bidirectional else layer)(hidden)
    probs = keras.layers.Dense(CLASSES, activation="softmax", name="probs")(hidden)
    model = keras.Model(tokens, probs)
    path = dest / f"{'bi' if bidirectional else ''}{cell}"
    model.export(str(path), verbose=False)
    return path


def tf1_while_loop_rnn(dest: Path, seed: int = 0) -> Path:
    """A frozen GraphDef: tokens [N, 16] int32 -> embedding lookup -> an Elman RNN over time written as a
    TF1 (control flow v1) `while_loop` -> dense -> softmax 'probs'."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    rng = np.random.default_rng(seed)

    def constant(shape: tuple[int, ...], scale: float, name: str) -> Any:
        return tf.constant(rng.normal(0, scale, shape).astype(np.float32), name=name)

    graph = tf.Graph()
    enabled = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False  # what TF1 wrote: Enter/Merge/Switch/Exit, no While op
    try:
        with graph.as_default():
            tokens = tf.compat.v1.placeholder(tf.int32, [None, SEQUENCE], name="tokens")
            embedded = tf.gather(constant((VOCAB, UNITS), 0.5, "embedding"), tokens)  # [N, T, U]
            steps = tf.transpose(embedded, [1, 0, 2])  # [T, N, U]
            kernel = constant((UNITS, UNITS), 0.3, "kernel")
            recurrent = constant((UNITS, UNITS), 0.3, "recurrent")

            def step(t: Any, state: Any) -> tuple[Any, Any]:
                return t + 1, tf.tanh(tf.matmul(steps[t], kernel) + tf.matmul(state, recurrent))

            initial = tf.zeros_like(steps[0])
            _, final = tf.compat.v1.while_loop(lambda t, _: t < SEQUENCE, step, [tf.constant(0), initial])
            logits = tf.matmul(final, constant((UNITS, CLASSES), 0.5, "dense"))
            tf.nn.softmax(logits, name="probs")
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = enabled
    ops = {node.op for node in graph.as_graph_def().node}
    assert {"Enter", "Exit", "NextIteration"} <= ops, f"not a v1 while loop: {sorted(ops)}"
    dest.mkdir(parents=True, exist_ok=True)
    tf.io.write_graph(graph.as_graph_def(), str(dest), "while_loop.pb", as_text=False)
    return dest / "while_loop.pb"
