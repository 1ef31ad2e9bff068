"""Transformer encoders for the zoo, built in the test with seeded random weights (no downloads).

Keras 3 layers as users write them: int32 tokens -> Embedding + learned positions -> MultiHeadAttention ->
residual + LayerNormalization -> Dense with exact GELU (Keras' default, which TensorFlow computes with Erfc)
-> residual + LayerNormalization -> mean over the sequence -> softmax classifier. The BERT-style variant
takes a second int32 input, the attention mask (1 = token, 0 = padding), as Hugging Face models do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

VOCABULARY = 100
CLASSES = 4


def _encoder_block(keras: Any, x: Any, d_model: int, heads: int, mask: Any = None) -> Any:
    attention = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=d_model // heads)
    attended = attention(x, x, attention_mask=mask)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x + attended)
    hidden = keras.layers.Dense(2 * d_model, activation="gelu")(x)
    return keras.layers.LayerNormalization(epsilon=1e-6)(x + keras.layers.Dense(d_model)(hidden))


def transformer_classifier(dest: Path, d_model: int = 32, seq: int = 16, heads: int = 2, layers: int = 1,
                           attention_mask: bool = False, seed: int = 0) -> Path:
    """A `.keras` encoder classifier with a fixed sequence length `seq`; with `attention_mask`, a second
    input `attention_mask` masks the keys (BERT-style). Returns the file's path."""
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.Input((seq,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCABULARY, d_model)(tokens)
    positions = keras.layers.Embedding(seq, d_model)(np.arange(seq, dtype=np.int32)[None])
    x = x + positions
    inputs = [tokens]
    mask = None
    if attention_mask:
        keep = keras.Input((seq,), dtype="int32", name="attention_mask")
        inputs.append(keep)
        # (batch, seq) -> (batch, query, key): every query attends to the unmasked keys.
        mask = keras.ops.cast(keras.ops.expand_dims(keep, 1), "bool")
        mask = keras.ops.repeat(mask, seq, axis=1)
    for _ in range(layers):
        x = _encoder_block(keras, x, d_model, heads, mask)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    probabilities = keras.layers.Dense(CLASSES, activation="softmax", name="probabilities")(pooled)
    model = keras.Model(inputs, probabilities)
    # Keras initialises biases to 0 and LayerNorm to (1, 0), which freezing folds away: random values keep
    # every Add and scale in the graph, as in a trained model.
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / ("bert_style.keras" if attention_mask else "transformer.keras")
    model.save(path)
    return path
