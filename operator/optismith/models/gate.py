"""The numerics gate: a graph transformation may not change what the model computes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optismith.results import Numerics

# Reordered float32 arithmetic (oneDNN picks kernels and blockings per shape and thread count) moves
# results by a few ULPs of the largest value involved; differences within this many ULPs are noise,
# whatever the output's range.
NOISE_ULPS = 64


def noise_floor(reference: Sequence[np.ndarray]) -> float:
    largest = max((float(np.max(np.abs(np.asarray(r, dtype=np.float64)), initial=0.0)) for r in reference),
                  default=0.0)
    return NOISE_ULPS * float(np.finfo(np.float32).eps) * max(largest, 1.0)


def rejection_reason(numerics: Numerics, reference: Sequence[np.ndarray], max_error: float) -> str | None:
    """None when the candidate's outputs are within `max_error` of the reference's (relative to the
    reference's range, see compare_outputs) or within float32 noise; else why the gate rejects it."""
    if not np.isfinite(numerics.max_abs_error):
        return "numerics: outputs contain NaN or infinity on the sample inputs"
    if numerics.relative_error <= max_error or numerics.max_abs_error <= noise_floor(reference):
        return None
    return (
        f"numerics: relative error {numerics.relative_error:.3g} (max abs {numerics.max_abs_error:.3g}, "
        f"cosine {numerics.cosine_similarity:.6f}) exceeds spec.optimize.maxAbsError {max_error:g}"
    )


def agreement(numerics: Numerics) -> tuple[str, float]:
    """(metric, value) of a variant without labels, as the evaluate stage scores it (drop = 1 - value): top-1
    agreement for class scores, else cosine similarity. Builders that search under the gate use it too."""
    if numerics.top1_agreement is not None:
        return "agreement", numerics.top1_agreement
    return "cosine", max(0.0, min(1.0, numerics.cosine_similarity))
