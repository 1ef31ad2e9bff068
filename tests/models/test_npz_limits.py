""".npz files within caps: a file that inflates to gigabytes is read lazily (only the samples used are inflated),
what would inflate past spec.limits.maxExpandedSize is refused before it is read, and an archive's end record
is checked before its directory is parsed."""

from __future__ import annotations

import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optismith.errors import DataError
from optismith.models.data import load_labelled, load_samples
from optismith.models.npz import LazyNpz
from optismith.results import TensorInfo
from optismith.spec import LimitsSpec

ROW = TensorInfo(name="x", dtype="float32", shape=[None, 768])
CHUNK = 16 << 20


def streamed_npz(path: Path, rows: int, columns: int = 768, *, fortran: bool = False) -> Path:
    """An .npz whose float32 zeros array `x` [rows, columns] inflates to rows*columns*4 bytes, written as a stream
    (deflated, it is a few MiB), plus labels `y`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f4", "fortran_order": fortran, "shape": (rows, columns)})
            left = rows * columns * 4
            zeros = bytes(CHUNK)
            while left > 0:
                member.write(zeros[:min(left, CHUNK)])
                left -= CHUNK
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, np.arange(rows, dtype=np.int64) % 10)
    return path


@pytest.mark.slow
def test_a_file_inflating_to_1_5_gb_is_read_lazily_for_200_samples(tmp_path: Path) -> None:
    path = streamed_npz(tmp_path / "big.npz", rows=500_000)  # 500000 x 768 x 4 bytes = 1.536 GB inflated
    assert path.stat().st_size < 8 << 20
    started = time.perf_counter()
    arrays, labels = load_labelled(str(path), None, [ROW], limit=200)
    assert arrays[0].shape == (200, 768) and labels is not None and list(labels[:3]) == [0, 1, 2]
    with LazyNpz(path, "big", max_entries=10, max_bytes=1 << 30) as archive:
        archive.read("x", 200)
        assert archive.inflated == 200 * 768 * 4, "only the 200 rows were inflated"
    assert time.perf_counter() - started < 30


def test_only_the_rows_used_count_against_the_cap(tmp_path: Path) -> None:
    path = streamed_npz(tmp_path / "m.npz", rows=20_000)  # 61 MB inflated
    limits = LimitsSpec(max_expanded_size="1Mi")
    (loaded,) = load_samples(str(path), None, [ROW], limit=200, limits=limits)  # 614 KB of rows: within the cap
    assert loaded.shape == (200, 768) and loaded.flags.writeable
    with pytest.raises(DataError, match=r"reading 1000 samples of 'x' would inflate 3072000 bytes.*maxExpandedSize"):
        load_samples(str(path), None, [ROW], limit=1000, limits=limits)


def test_a_fortran_order_array_is_read_whole_and_so_counts_whole(tmp_path: Path) -> None:
    path = streamed_npz(tmp_path / "m.npz", rows=2_000, fortran=True)  # rows are not contiguous
    with pytest.raises(DataError, match="would inflate 6144000 bytes"):
        load_samples(str(path), None, [ROW], limit=10, limits=LimitsSpec(max_expanded_size="1Mi"))
    (loaded,) = load_samples(str(path), None, [ROW], limit=10)
    assert loaded.shape == (10, 768)


def test_a_data_file_declaring_too_many_entries_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    np.savez(path, x=np.zeros((4, 768), np.float32))
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8:at + 12] = struct.pack("<HH", 60_000, 60_000)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="more than 1000 entries"):
        load_samples(str(path), None, [ROW], limit=1, limits=LimitsSpec(max_archive_entries=1000))


def test_a_truncated_member_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive, archive.open("x.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (100, 768)})
        member.write(bytes(1000))
    with pytest.raises(DataError, match="truncated"):
        load_samples(str(path), None, [ROW], limit=10)
