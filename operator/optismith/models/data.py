"""Calibration and evaluation data: `.npz` files (local or S3) checked against the model's inputs.

A file holds `x` for a single-input model, or one array per input name, plus optional integer
labels `y`. The first dimension is the sample (batch) dimension; every other dimension must match
the model where the model fixes it. Files are read lazily (models/npz.py): only the samples used are
inflated, within spec.limits.maxExpandedSize; a download is refused over spec.limits.maxModelSize.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optismith.errors import DataError
from optismith.models.npz import ArrayHeader, LazyNpz
from optismith.spec import LimitsSpec, size_bytes
from optismith.storage import open_storage
from optismith.storage.local import LocalStorage
from optismith.tensors import NameMismatch, TensorLike, bare_name, match_names, shape_text

if TYPE_CHECKING:
    from optismith.spec import StorageSpec

SINGLE_INPUT_KEY = "x"
LABELS_KEY = "y"
_SAVEZ_HINT = "numpy.savez(path, x=inputs, y=labels)"


def load_samples(uri: str, storage_spec: StorageSpec | None, inputs: Sequence[TensorLike],
                 limit: int, *, limits: LimitsSpec | None = None) -> list[np.ndarray]:
    """At most `limit` samples, one array per input in `inputs` order, in the inputs' dtypes."""
    arrays, _ = load_labelled(uri, storage_spec, inputs, limit, limits=limits)
    return arrays


def load_labelled(uri: str, storage_spec: StorageSpec | None, inputs: Sequence[TensorLike],
                  limit: int, *, limits: LimitsSpec | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Like load_samples, plus the labels `y` as int64 (None when the file has none)."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if not inputs:
        raise DataError("the model has no inputs to feed", where=uri, fix="check the model's signature")
    limits = limits or LimitsSpec()
    with _local_copy(uri, storage_spec, size_bytes(limits.max_model_size)) as path, \
            LazyNpz(path, uri, max_entries=limits.max_archive_entries,
                    max_bytes=size_bytes(limits.max_expanded_size)) as archive:
        chosen = _choose_arrays(archive, inputs, uri)
        headers = [_checked(archive, key, spec, uri) for key, spec in zip(chosen, inputs, strict=True)]
        labelled = LABELS_KEY in archive.files and LABELS_KEY not in chosen
        _same_sample_count(chosen, headers, archive.header(LABELS_KEY) if labelled else None, uri)
        arrays = [archive.read(key, limit) for key in chosen]
        labels = _labels(archive.read(LABELS_KEY, limit), uri) if labelled else None
    converted = [_converted(array, key, spec, uri) for array, key, spec in zip(arrays, chosen, inputs, strict=True)]
    return converted, labels


# --- reading ----------------------------------------------------------------------------------


@contextmanager
def _local_copy(uri: str, storage_spec: StorageSpec | None, max_download: int) -> Iterator[Path]:
    """A local path to the file at `uri`; S3 objects are downloaded to a temporary file (within `max_download`
    bytes). Local files are read in place, lazily."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    if not name:
        raise DataError("the data URI names no file", where=uri, fix="point it at an .npz file")
    store = open_storage(parent or ".", storage_spec)
    if isinstance(store, LocalStorage):
        path = store.local_path(name)
        if not path.is_file():
            raise DataError("no such file", where=str(path), fix=f"check the path (write it with {_SAVEZ_HINT})")
        yield path
        return
    if store.exists(name) and store.size(name) > max_download:
        raise DataError(f"the data file is {store.size(name)} bytes, over spec.limits.maxModelSize ({max_download} "
                        "bytes)", where=uri, fix="store fewer samples, or raise spec.limits.maxModelSize")
    with tempfile.TemporaryDirectory(prefix="optismith-data-") as temp:
        local = Path(temp) / name
        store.download_file(name, local)
        yield local


def _choose_arrays(archive: LazyNpz, inputs: Sequence[TensorLike], uri: str) -> list[str]:
    found = list(archive.files)
    if len(inputs) == 1:
        for key in (SINGLE_INPUT_KEY, inputs[0].name, bare_name(inputs[0].name)):
            if key in found:
                return [key]
        raise DataError(
            f"no array named {SINGLE_INPUT_KEY!r} (or {inputs[0].name!r}); the file has {found}",
            where=uri, fix=f"store the inputs as 'x': {_SAVEZ_HINT}",
        )
    try:
        return [found[i] for i in match_names(found, [spec.name for spec in inputs], positional=False)]
    except NameMismatch as mismatch:
        names = [bare_name(s.name) for s in inputs]
        missing = mismatch.missing
        raise DataError(
            f"the model has {len(inputs)} inputs {names} but the file has no array for {missing}; "
            f"it has {found}",
            where=uri, fix="store one array per input, named after the input: numpy.savez(path, "
            + ", ".join(f"{n}=..." for n in names) + ")",
        ) from None


def _checked(archive: LazyNpz, key: str, spec: TensorLike, uri: str) -> ArrayHeader:
    """The array's header, after checking its shape fits the input (nothing is inflated yet)."""
    header = archive.header(key)
    expected = list(spec.shape)
    if len(header.shape) != len(expected) or any(
        want is not None and want >= 0 and have != want
        for have, want in zip(header.shape[1:], expected[1:], strict=False)
    ):
        raise DataError(
            f"array {key!r} has shape {header.shape} but input {bare_name(spec.name)!r} expects "
            f"{shape_text(expected)} (first dimension: samples)",
            where=uri,
            fix=f"reshape the array to {shape_text(['N', *expected[1:]])} before saving it",
        )
    if header.shape[0] == 0:
        raise DataError(f"array {key!r} holds no samples", where=uri, fix="store at least one sample")
    return header


def _converted(array: np.ndarray, key: str, spec: TensorLike, uri: str) -> np.ndarray:
    want = np.dtype(spec.dtype)
    have = array.dtype
    lossless = have == want or (want.kind == "f" and have.kind in "fiub") or (
        want.kind in "iu" and have.kind in "iub" and _fits(array, want)
    ) or (want.kind == "b" and have.kind == "b")
    if not lossless:
        raise DataError(
            f"array {key!r} has dtype {have} but input {bare_name(spec.name)!r} takes {want}", where=uri,
            fix=f"convert the array with .astype('{want}') before saving it (after any preprocessing)",
        )
    converted = np.ascontiguousarray(array.astype(want, copy=False))
    if want.kind == "f" and not np.all(np.isfinite(converted)):
        raise DataError(f"array {key!r} contains NaN or infinite values", where=uri,
                        fix="remove or repair those samples")
    return converted


def _fits(array: np.ndarray, dtype: np.dtype[Any]) -> bool:
    if array.size == 0:
        return True
    info = np.iinfo(dtype.type)
    return bool(array.min() >= info.min and array.max() <= info.max)


def _labels(labels: np.ndarray, uri: str) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = labels.argmax(axis=1)
    elif labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or (labels.dtype.kind not in "iub" and not _integral(labels)):
        raise DataError(
            f"labels 'y' have shape {tuple(labels.shape)} and dtype {labels.dtype}; expected one integer "
            "class index per sample (or one-hot rows)",
            where=uri, fix="store y as an integer array of shape (N,)",
        )
    return labels.astype(np.int64)


def _integral(array: np.ndarray) -> bool:
    return array.dtype.kind == "f" and bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))


def _same_sample_count(keys: list[str], headers: list[ArrayHeader], labels: ArrayHeader | None, uri: str) -> None:
    counts = {key: header.samples for key, header in zip(keys, headers, strict=True)}
    if labels is not None:
        counts[LABELS_KEY] = labels.samples
    if len(set(counts.values())) > 1:
        raise DataError(f"arrays hold different numbers of samples: {counts}", where=uri,
                        fix="store the same number of samples (first dimension) in every array")
