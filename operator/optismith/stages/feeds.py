"""Input arrays for sessions: the seeded samples the inspect stage saved (or data a user gave),
matched to each runtime's input names and cut or tiled to a batch size."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from optismith.errors import DataError
from optismith.runtimes.base import IOSpec
from optismith.stages.base import StageContext

SAMPLES_KEY = "samples/inputs.npz"
_TENSOR_SUFFIX = re.compile(r":\d+$")
_SIGNATURE_PREFIX = re.compile(r"^serving_default_")


def load_samples(ctx: StageContext) -> dict[str, np.ndarray] | None:
    """The seeded inputs by input name, or None when the inspect stage saved none."""
    if not ctx.store.exists(SAMPLES_KEY):
        return None
    with np.load(ctx.fetch(SAMPLES_KEY), allow_pickle=False) as data:
        return {name: np.asarray(data[name]) for name in data.files}


def _normalized(name: str) -> str:
    return _SIGNATURE_PREFIX.sub("", _TENSOR_SUFFIX.sub("", name))


def align_inputs(arrays: Mapping[str, np.ndarray], specs: Sequence[IOSpec]) -> list[np.ndarray]:
    """One array per session input, in the session's order and dtype. Runtimes rename inputs
    ('image' -> 'serving_default_image:0'), so names are matched exactly, then without tensor suffixes
    and signature prefixes, then by position when the counts agree."""
    by_name = dict(arrays)
    by_normalized = {_normalized(name): array for name, array in arrays.items()}
    values = list(arrays.values())
    aligned: list[np.ndarray] = []
    for position, spec in enumerate(specs):
        if spec.name in by_name:
            array = by_name[spec.name]
        elif _normalized(spec.name) in by_normalized:
            array = by_normalized[_normalized(spec.name)]
        elif len(values) == len(specs):
            array = values[position]
        else:
            raise DataError(f"no data for input {spec.name!r}; the data has {sorted(arrays)}",
                            fix="name the arrays after the model's inputs")
        aligned.append(np.asarray(array).astype(spec.dtype, copy=False))
    return aligned


def batch_of(arrays: Sequence[np.ndarray], batch: int, start: int = 0) -> list[np.ndarray]:
    """`batch` rows from each array starting at `start`, wrapping around (tiling) when there are fewer."""
    out = []
    for array in arrays:
        count = array.shape[0]
        if count == 0:
            raise DataError("an input array has no samples", fix="provide at least one sample")
        rows = (start + np.arange(batch)) % count
        out.append(np.ascontiguousarray(array[rows]))
    return out


def synthetic_inputs(specs: Sequence[IOSpec], count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for sessions whose model came without samples: only shapes matter for timing."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = (count, *(dim if dim is not None else 1 for dim in spec.shape[1:]))
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arrays[spec.name] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[spec.name] = rng.random(shape) < 0.5
        else:
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return arrays
