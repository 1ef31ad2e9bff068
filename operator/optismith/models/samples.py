"""Seeded sample inputs matching a model's signature, for cheap numerics checks between variants."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optismith.results import TensorInfo

SAMPLE_COUNT = 32
# Dynamic dimensions other than the batch get this size: 32 survives five stride-2 downsamplings.
DYNAMIC_DIM = 32


def sample_shape(info: TensorInfo, count: int) -> tuple[int, ...]:
    dims = [count if position == 0 and dim is None else (DYNAMIC_DIM if dim is None else dim)
            for position, dim in enumerate(info.shape)]
    return tuple(dims)


def make_samples(inputs: Sequence[TensorInfo], count: int = SAMPLE_COUNT, seed: int = 0) -> dict[str, np.ndarray]:
    """One array per input, keyed by input name: floats uniform in [0, 1) (the range image models
    are usually fed), integers in [0, 10) (valid ids for embedding tables), random booleans."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for info in inputs:
        shape = sample_shape(info, count)
        dtype = np.dtype(info.dtype)
        if dtype == np.bool_:
            arrays[info.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            arrays[info.name] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            arrays[info.name] = rng.random(shape, dtype=np.float64).astype(dtype)
    return arrays
