"""Tensors by name: matching the names one place uses to another's, cutting batches, inventing inputs.

Every runtime names a model's tensors its own way: the SavedModel signature says `image`, a frozen graph
`image:0`, TFLite `serving_default_image:0`, tf2onnx keeps whichever it was given. Data files name their
arrays `x` or after the inputs. This module is the one place that matches them: exactly, then without
the tensor index suffix (`:0`), then without the signature prefix (`serving_default_`), and finally by
position when the counts agree and no name matched at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from optismith.errors import DataError

_TENSOR_SUFFIX = re.compile(r":\d+$")
_SIGNATURE_PREFIX = re.compile(r"^serving_default_")
# Dynamic dimensions other than the batch get this size in invented inputs: 32 survives five stride-2
# downsamplings and is a plausible sequence length.
DYNAMIC_DIM = 32


class TensorLike(Protocol):
    """Anything with a name, a numpy dtype name and a shape (-1 or None for free dimensions):
    results.TensorInfo, runtimes.IOSpec and spec.TensorSpec all qualify."""

    @property
    def name(self) -> str: ...

    @property
    def dtype(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | None]: ...


def bare_name(name: str) -> str:
    """'image:0' -> 'image'."""
    return _TENSOR_SUFFIX.sub("", name)


def normalized_name(name: str) -> str:
    """'serving_default_image:0' -> 'image'."""
    return _SIGNATURE_PREFIX.sub("", bare_name(name))


class NameMismatch(ValueError):
    """Some wanted names have no counterpart."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def match_names(available: Sequence[str], wanted: Sequence[str], *, positional: bool = True) -> list[int]:
    """For each wanted name, the index of its counterpart in `available` (see the module docstring). Data
    files match by name only (`positional=False`): their arrays have no order a model could rely on."""
    keys: tuple[Callable[[str], str], ...] = (str, bare_name, normalized_name)
    tables = [(key, {key(n): i for i, n in enumerate(available)}) for key in keys]
    found: list[int | None] = [next((table[key(name)] for key, table in tables if key(name) in table), None)
                               for name in wanted]
    if all(i is not None for i in found):
        return [i for i in found if i is not None]
    if positional and len(available) == len(wanted) and all(i is None for i in found):
        return list(range(len(available)))
    missing = [name for name, index in zip(wanted, found, strict=True) if index is None]
    raise NameMismatch(f"no tensors named {missing}; there are {list(available)}", missing)


def align(arrays: Mapping[str, np.ndarray], specs: Sequence[TensorLike]) -> list[np.ndarray]:
    """One array per spec, in the specs' order and dtypes."""
    try:
        order = match_names(list(arrays), [spec.name for spec in specs])
    except NameMismatch:
        raise DataError(f"no data for inputs {[s.name for s in specs]}; the data has {sorted(arrays)}",
                        fix="name the arrays after the model's inputs") from None
    values = list(arrays.values())
    return [np.asarray(values[i]).astype(spec.dtype, copy=False) for i, spec in zip(order, specs, strict=True)]


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


def shape_text(dims: Sequence[int | str | None]) -> str:
    """(N, 224, 224, 3): the sample dimension and free dimensions as N."""
    return "(" + ", ".join("N" if d is None or (isinstance(d, int) and d < 0) else str(d) for d in dims) + ")"


def synthetic(specs: Sequence[TensorLike], count: int, seed: int = 0, *,
              dynamic: int | None = DYNAMIC_DIM, where: str = "") -> dict[str, np.ndarray]:
    """Seeded random inputs, one array per spec (by name): floats uniform in [0, 1) (the range image models
    are usually fed), integers in [0, 10) (valid ids for embedding tables), random booleans. The first
    dimension is `count`; other free dimensions get `dynamic`, or a DataError when it is None (calibrating
    on invented sequence lengths or image sizes would describe no real input)."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        dims = list(spec.shape)
        free = [i for i, d in enumerate(dims[1:], start=1) if d is None or d < 0]
        if free and dynamic is None:
            raise DataError(f"cannot invent data for input {spec.name!r}: dimension {free[0]} of its shape "
                            f"{shape_text(dims)} is not fixed", where=where, fix="give real samples")
        shape = (count, *(int(dynamic or 1) if d is None or d < 0 else int(d) for d in dims[1:]))
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            dtype = np.dtype(object)  # e.g. TensorFlow's string: refused below
        if dtype.kind == "b":
            arrays[spec.name] = rng.random(shape) < 0.5
        elif dtype.kind in "iu":
            arrays[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "f":
            arrays[spec.name] = rng.random(shape).astype(dtype)
        else:
            raise DataError(f"cannot invent data of dtype {spec.dtype} for input {spec.name!r}", where=where,
                            fix="give real samples")
    return arrays
