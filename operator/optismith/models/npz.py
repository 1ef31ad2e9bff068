""".npz data files read lazily, within caps: only the rows a stage uses are inflated.

`numpy.load` inflates a whole array to hand back its first 200 samples, so a file of a few MiB that inflates to
gigabytes costs gigabytes. Here the zip's end record is checked first (entry count, directory size), each array's
`.npy` header is read from its member (shape, dtype, order), and only `rows` rows are read out of the stream; the
bytes inflated are counted against `spec.limits.maxExpandedSize` before and while reading. Object arrays (which
need pickle, that is code) are refused.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from optismith.errors import DataError, ModelFormatError, UnsafeArchiveError
from optismith.models.zipcheck import check_central_directory, check_member

_SAVEZ_HINT = "numpy.savez(path, x=inputs, y=labels)"


@dataclass(frozen=True)
class ArrayHeader:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool

    @property
    def samples(self) -> int:
        return self.shape[0] if self.shape else 1

    def bytes_for(self, rows: int) -> int:
        """Bytes of the first `rows` samples (all of them for Fortran order, where rows are not contiguous)."""
        if not self.shape:
            return self.dtype.itemsize
        rows = self.shape[0] if self.fortran_order else min(rows, self.shape[0])
        return rows * math.prod(self.shape[1:]) * self.dtype.itemsize


class LazyNpz:
    def __init__(self, path: Path, uri: str, *, max_entries: int, max_bytes: int) -> None:
        self.uri = uri
        self.max_bytes = max_bytes
        self.inflated = 0
        with path.open("rb") as handle:
            if handle.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
                raise DataError("this is a single .npy array, not an .npz archive of named arrays", where=uri,
                                fix=f"write the data with {_SAVEZ_HINT}")
        try:
            check_central_directory(path, max_entries, uri, "spec.limits.maxArchiveEntries")
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        except (ModelFormatError, UnsafeArchiveError, zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"not a readable .npz file: {getattr(error, 'what', error)}", where=uri,
                            fix=f"write the data with {_SAVEZ_HINT}") from None
        self._members = {info.filename.removesuffix(".npy"): info for info in infos if info.filename.endswith(".npy")}
        self._headers: dict[str, ArrayHeader] = {}

    def __enter__(self) -> LazyNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    @property
    def files(self) -> list[str]:
        return list(self._members)

    def _open(self, name: str) -> tuple[IO[bytes], ArrayHeader]:
        info = self._members[name]
        try:
            check_member(info, self.uri)
        except ModelFormatError as error:
            raise DataError(error.what, where=self.uri, fix=f"write the data with {_SAVEZ_HINT}") from None
        stream = self._zip.open(info)
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f".npy format version {version} is not read here")
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            stream.close()
            raise DataError(f"array {name!r} is no readable .npy array: {error}", where=self.uri,
                            fix=f"write the data with {_SAVEZ_HINT}") from None
        if dtype.hasobject:
            stream.close()
            raise DataError(f"array {name!r} holds Python objects, which cannot be loaded without pickle",
                            where=self.uri, fix="store plain numeric arrays, not Python objects")
        return stream, ArrayHeader(tuple(int(d) for d in shape), np.dtype(dtype), bool(fortran))

    def header(self, name: str) -> ArrayHeader:
        if name not in self._headers:
            stream, self._headers[name] = self._open(name)
            stream.close()
        return self._headers[name]

    def read(self, name: str, rows: int) -> np.ndarray:
        """The first `rows` samples of array `name` (the whole array when it has fewer)."""
        stream, header = self._open(name)
        size = header.bytes_for(rows)
        if self.inflated + size > self.max_bytes:
            stream.close()
            raise DataError(
                f"reading {rows} samples of {name!r} would inflate {self.inflated + size} bytes, over "
                f"spec.limits.maxExpandedSize ({self.max_bytes} bytes)", where=self.uri,
                fix="store fewer or smaller samples (or in C order), or raise spec.limits.maxExpandedSize")
        with stream:
            data = bytearray(_read_exactly(stream, size))  # writable arrays, like numpy.load gives
        self.inflated += len(data)
        if len(data) < size:
            raise DataError(f"array {name!r} is truncated: {len(data)} of {size} bytes", where=self.uri,
                            fix=f"write the data again with {_SAVEZ_HINT}")
        if not header.shape:
            return np.frombuffer(data, header.dtype).reshape(())
        if header.fortran_order:
            return np.frombuffer(data, header.dtype).reshape(header.shape, order="F")[:rows]
        count = min(rows, header.shape[0])
        return np.frombuffer(data, header.dtype).reshape((count, *header.shape[1:]))


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
