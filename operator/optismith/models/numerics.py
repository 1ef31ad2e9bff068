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
    agreement = None
    first_ref = np.asarray(reference[0]) if reference else None
    if first_ref is not None and first_ref.ndim == 2 and first_ref.shape[1] > 1:
        first_cand = np.asarray(candidate[0]).reshape(first_ref.shape)
        agreement = float(np.mean(first_ref.argmax(axis=1) == first_cand.argmax(axis=1)))
    return Numerics(
        samples=samples,
        max_abs_error=max_abs,
        mean_abs_error=total_abs / max(count, 1),
        relative_error=max_abs / value_range if value_range > 0 else max_abs,
        cosine_similarity=float(cosine),
        top1_agreement=agreement,
    )
