"""How far one model's outputs are from another's on the same inputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optismith.results import Numerics


def compare_outputs(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Numerics:
    """Compare output lists elementwise. The relative error is scaled by the reference's range, so a
    tolerance means the same thing for logits and for probabilities."""
    if len(reference) != len(candidate):
        raise ValueError(f"output count differs: {len(reference)} vs {len(candidate)}")
    max_abs = 0.0
    total_abs = 0.0
    count = 0
    value_range = 0.0
    dots = 0.0
    norm_ref = 0.0
    norm_cand = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        ref64 = np.asarray(ref, dtype=np.float64)
        cand64 = np.asarray(cand, dtype=np.float64).reshape(ref64.shape)
        diff = np.abs(ref64 - cand64)
        finite = bool(np.all(np.isfinite(cand64)))
        max_abs = max(max_abs, float(diff.max(initial=0.0))) if finite else float("inf")
        total_abs += float(np.nansum(diff))
        count += diff.size
        value_range = max(value_range, float(ref64.max(initial=0.0) - ref64.min(initial=0.0)))
        dots += float(np.nansum(ref64 * cand64))
        norm_ref += float(np.sum(ref64 * ref64))
        norm_cand += float(np.nansum(cand64 * cand64))
    cosine = dots / (np.sqrt(norm_ref) * np.sqrt(norm_cand)) if norm_ref > 0 and norm_cand > 0 else 0.0
    samples = int(np.asarray(reference[0]).shape[0]) if reference and np.asarray(reference[0]).ndim else 1
    agreement, per = (None, None)
    if reference:
        first_ref = np.asarray(reference[0])
        agreement, per = class_agreement(first_ref, np.asarray(candidate[0]).reshape(first_ref.shape))
    return Numerics(
        samples=samples,
        max_abs_error=max_abs,
        mean_abs_error=total_abs / max(count, 1),
        relative_error=max_abs / value_range if value_range > 0 else max_abs,
        cosine_similarity=float(cosine),
        top1_agreement=agreement,
        agreement_per=per,
    )


# A last axis whose entries are non-negative and sum to 1 within this is a class distribution (a softmax).
_DISTRIBUTION_TOLERANCE = 1e-3


def _is_distribution(scores: np.ndarray) -> bool:
    return bool(scores.size and np.all(scores >= -_DISTRIBUTION_TOLERANCE)
                and np.allclose(scores.sum(axis=-1), 1.0, atol=_DISTRIBUTION_TOLERANCE * scores.shape[-1]))


def class_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float | None, str | None]:
    """(fraction that agrees, what was compared), or (None, None) where the output holds no classes.

    [samples, classes]: the top-1 class per sample. Dense predictions -- a [N, H, W, C] segmentation map,
    per-token [N, T, C] probabilities -- agree per element (each pixel's or token's argmax over the last
    axis), never the top-1 of the flattened output: one pixel moving the global maximum would count as a
    wrong sample, and half the pixels flipping under it would not. [N, H, W, C] counts as class scores
    (logits or probabilities); rank 3 and above only when the last axis is a distribution, so hidden states
    keep being compared by cosine. A one-channel map of probabilities ([..., 1] in [0, 1]) agrees per
    element on which side of 0.5 it lies."""
    if reference.ndim == 2 and reference.shape[1] > 1:
        return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1))), "sample"
    if reference.ndim < 3:
        return None, None
    if reference.shape[-1] > 1 and (reference.ndim == 4 or _is_distribution(reference)):
        return float(np.mean(reference.argmax(axis=-1) == candidate.argmax(axis=-1))), "element"
    if reference.shape[-1] == 1 and reference.min() >= 0.0 and reference.max() <= 1.0:
        return float(np.mean((reference > 0.5) == (candidate > 0.5))), "element"
    return None, None
