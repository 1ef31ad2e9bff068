"""The numerics gate: rejects transformations that change results, tolerates float32 noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.models.freezing import freeze_saved_model, write_graph
from optismith.models.gate import noise_floor, rejection_reason
from optismith.models.numerics import compare_outputs
from optismith.results import Numerics


def numerics_verdict(reference: list[np.ndarray], candidate: list[np.ndarray],
                     max_error: float) -> tuple[Numerics, str | None]:
    numerics = compare_outputs(reference, candidate)
    return numerics, rejection_reason(numerics, reference, max_error)


def _probabilities(seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(16, 10))
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def test_identical_outputs_pass() -> None:
    reference = [_probabilities()]
    numerics, reason = numerics_verdict(reference, [reference[0].copy()], 1e-3)
    assert reason is None and numerics.max_abs_error == 0.0 and numerics.top1_agreement == 1.0


def test_float32_rounding_noise_passes_even_a_zero_tolerance() -> None:
    reference = [_probabilities()]
    noisy = np.nextafter(reference[0], np.float32(2.0))  # one ULP up everywhere
    numerics, reason = numerics_verdict(reference, [noisy], 0.0)
    assert numerics.max_abs_error > 0 and reason is None
    assert noise_floor([np.full(3, 1000.0)]) > noise_floor(reference), "noise scales with the magnitude"


def test_a_real_change_is_rejected_with_the_numbers() -> None:
    reference = [_probabilities()]
    changed = reference[0] + np.float32(0.01)
    numerics, reason = numerics_verdict(reference, [changed], 1e-3)
    assert reason is not None
    assert f"{numerics.relative_error:.3g}" in reason and "maxAbsError 0.001" in reason
    assert numerics_verdict(reference, [changed], 0.5)[1] is None, "within a looser tolerance"


def test_non_finite_outputs_are_rejected() -> None:
    reference = [_probabilities()]
    broken = reference[0].copy()
    broken[3, 4] = np.nan
    assert "NaN" in (numerics_verdict(reference, [broken], 1.0)[1] or "")


@pytest.mark.tf
def test_a_perturbed_graph_is_rejected(digits_dir: Path, tmp_path: Path) -> None:
    """A deliberately wrong rewrite (one weight tensor scaled by 1.5), run through the tf-graphdef
    runtime like the stages do."""
    import tensorflow as tf

    from optismith.runtimes.tf import GraphDefRuntime

    frozen = freeze_saved_model(digits_dir / "model", "serving_default")
    good = write_graph(frozen.graph_def, frozen.io, tmp_path / "good", "frozen.pb")
    perturbed = tf.compat.v1.GraphDef()
    perturbed.CopyFrom(frozen.graph_def)
    kernels = [n for n in perturbed.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_shape.dim) == 4]
    weights = tf.make_ndarray(kernels[-1].attr["value"].tensor)
    kernels[-1].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights * 1.5))
    bad = write_graph(perturbed, frozen.io, tmp_path / "bad", "frozen.pb")

    x = np.load(digits_dir / "data" / "eval.npz")["x"][:32]
    outputs = {}
    for name, path in (("good", good), ("bad", bad)):
        session = GraphDefRuntime.load(path, threads=1)
        outputs[name] = session.run([x])
        session.close()
    loaded = tf.saved_model.load(str(digits_dir / "model"))
    reference = [loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy()]

    assert numerics_verdict(reference, outputs["good"], 1e-3)[1] is None
    numerics, reason = numerics_verdict(reference, outputs["bad"], 1e-3)
    assert reason is not None and numerics.relative_error > 1e-3


def _segmentation(seed: int = 0, shape: tuple[int, ...] = (2, 16, 16, 4), contrast: float = 1.0) -> np.ndarray:
    logits = contrast * np.random.default_rng(seed).normal(size=shape)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _flip_pixels(scores: np.ndarray, count: int, keep: tuple[int, int] | None = None) -> np.ndarray:
    """`count` pixels of each sample get another class (the classes of the pixel rolled by one),
    never the pixel `keep`."""
    flipped = scores.copy()
    pixels = [(h, w) for h in range(scores.shape[1]) for w in range(scores.shape[2]) if (h, w) != keep]
    for h, w in pixels[:count]:
        flipped[:, h, w] = np.roll(scores[:, h, w], 1, axis=-1)
    return flipped


def test_segmentation_maps_agree_per_pixel_not_by_the_flattened_top1() -> None:
    reference = _segmentation()
    # One pixel of 256 changes, and it is the one holding each sample's global maximum: 99.6% of the pixels
    # agree, while the top-1 of the flattened output disagrees on every sample.
    flat_max = [np.unravel_index(np.argmax(sample), sample.shape)[:2] for sample in reference]
    moved = reference.copy()
    for index, (h, w) in enumerate(flat_max):
        moved[index, h, w] = np.roll(reference[index, h, w], 1)
    assert all(np.argmax(m) != np.argmax(r) for m, r in zip(moved, reference, strict=True))
    numerics = compare_outputs([reference], [moved])
    assert numerics.agreement_per == "element" and numerics.top1_agreement == pytest.approx(255 / 256)
    # Vice versa: the flattened top-1 agrees (the global maximum's pixel is kept) while a quarter of the
    # pixels take another class. Where the classes are close, the whole-output cosine (the metric for such
    # outputs before) said 0.99+: within a 1% gate.
    reference = _segmentation(contrast=0.1)
    kept = tuple(int(v) for v in np.unravel_index(np.argmax(reference[0]), reference[0].shape)[:2])
    wrong = _flip_pixels(reference[:1], 64, keep=(kept[0], kept[1]))
    assert np.argmax(wrong[0]) == np.argmax(reference[0])
    numerics = compare_outputs([reference[:1]], [wrong])
    assert numerics.top1_agreement == pytest.approx(0.75) and numerics.cosine_similarity > 0.99


def test_dense_outputs_that_are_not_class_scores_keep_the_cosine() -> None:
    hidden = np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)  # per-token hidden states
    assert compare_outputs([hidden], [hidden]).top1_agreement is None
    tokens = _segmentation(shape=(2, 5, 8)).astype(np.float32)  # per-token probabilities
    numerics = compare_outputs([tokens], [tokens])
    assert numerics.top1_agreement == 1.0 and numerics.agreement_per == "element"
    mask = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)  # a sigmoid mask
    inverted = 1.0 - mask
    assert compare_outputs([mask], [inverted]).top1_agreement == pytest.approx(
        float(np.mean((mask > 0.5) == (inverted > 0.5))))
    classes = compare_outputs([_probabilities()], [_probabilities()])
    assert classes.agreement_per == "sample"
