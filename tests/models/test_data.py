"""Calibration / evaluation data: loading .npz files and checking them against the model's inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.errors import DataError, StorageError
from optismith.models.data import load_labelled, load_samples
from optismith.results import TensorInfo
from optismith.runtimes.base import IOSpec
from optismith.spec import TensorSpec

IMAGE = TensorInfo(name="image", dtype="float32", shape=[None, 8, 8, 1])


def _save(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_single_input_reads_x_limited_and_cast(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((20, 8, 8, 1))  # float64, as numpy makes it
    uri = _save(tmp_path / "cal.npz", x=x)
    (loaded,) = load_samples(uri, None, [IMAGE], limit=5)
    assert loaded.shape == (5, 8, 8, 1) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, x[:5].astype(np.float32))
    assert loaded.flags.c_contiguous


def test_file_uri_and_array_named_after_the_input(tmp_path: Path) -> None:
    x = np.zeros((3, 8, 8, 1), dtype=np.float32)
    uri = "file://" + _save(tmp_path / "cal.npz", image=x)
    (loaded,) = load_samples(uri, None, [IMAGE], limit=100)
    assert loaded.shape == (3, 8, 8, 1)


def test_multiple_inputs_by_name_in_the_inputs_order(tmp_path: Path) -> None:
    inputs = [IOSpec("ids", "int32", (None, 5)), IOSpec("mask:0", "float32", (None, 5))]
    uri = _save(tmp_path / "two.npz", mask=np.ones((4, 5)), ids=np.arange(20, dtype=np.int64).reshape(4, 5))
    ids, mask = load_samples(uri, None, inputs, limit=10)
    assert ids.dtype == np.int32 and mask.dtype == np.float32
    assert ids[3, 4] == 19 and mask.shape == (4, 5)


def test_missing_input_array_names_what_is_missing(tmp_path: Path) -> None:
    inputs = [
        TensorSpec(name="ids", dtype="int32", shape=[-1, 5]),
        TensorSpec(name="mask", dtype="float32", shape=[-1, 5]),
    ]
    uri = _save(tmp_path / "one.npz", ids=np.zeros((2, 5), dtype=np.int32))
    with pytest.raises(DataError) as caught:
        load_samples(uri, None, inputs, limit=10)
    message = str(caught.value)
    assert "['mask']" in message and "numpy.savez(path, ids=..., mask=...)" in message and uri in message


def test_wrong_shape_names_file_array_expected_and_actual(tmp_path: Path) -> None:
    uri = _save(tmp_path / "flat.npz", x=np.zeros((10, 64), dtype=np.float32))
    with pytest.raises(DataError) as caught:
        load_samples(uri, None, [IMAGE], limit=10)
    error = caught.value
    assert error.where == uri
    assert "array 'x' has shape (10, 64)" in error.what and "expects (N, 8, 8, 1)" in error.what
    assert error.fix == "reshape the array to (N, 8, 8, 1) before saving it"
    assert error.exit_code == 7


def test_wrong_inner_dimension_is_caught(tmp_path: Path) -> None:
    uri = _save(tmp_path / "rgb.npz", x=np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"\(2, 8, 8, 3\) but input 'image' expects \(N, 8, 8, 1\)"):
        load_samples(uri, None, [IMAGE], limit=10)


def test_free_dimensions_accept_any_size(tmp_path: Path) -> None:
    sequence = IOSpec("tokens", "int64", (None, None))
    uri = _save(tmp_path / "seq.npz", x=np.ones((3, 17), dtype=np.int64))
    (loaded,) = load_samples(uri, None, [sequence], limit=10)
    assert loaded.shape == (3, 17)


def test_float_data_for_an_integer_input_is_refused(tmp_path: Path) -> None:
    uri = _save(tmp_path / "f.npz", x=np.ones((3, 5), dtype=np.float32))
    with pytest.raises(DataError, match=r"dtype float32 but input 'ids' takes int32.*astype\('int32'\)"):
        load_samples(uri, None, [IOSpec("ids", "int32", (None, 5))], limit=10)


def test_integers_out_of_range_are_refused(tmp_path: Path) -> None:
    uri = _save(tmp_path / "big.npz", x=np.full((2, 5), 300, dtype=np.int64))
    with pytest.raises(DataError, match="takes int8"):
        load_samples(uri, None, [IOSpec("ids", "int8", (None, 5))], limit=10)


def test_nan_values_are_refused(tmp_path: Path) -> None:
    x = np.zeros((4, 8, 8, 1), dtype=np.float32)
    x[2, 0, 0, 0] = np.nan
    uri = _save(tmp_path / "nan.npz", x=x)
    with pytest.raises(DataError, match="NaN or infinite"):
        load_samples(uri, None, [IMAGE], limit=10)


def test_labels_are_optional_and_one_hot_is_accepted(tmp_path: Path) -> None:
    x = np.zeros((6, 8, 8, 1), dtype=np.float32)
    plain = _save(tmp_path / "plain.npz", x=x)
    assert load_labelled(plain, None, [IMAGE], limit=10)[1] is None
    labelled = _save(tmp_path / "y.npz", x=x, y=np.array([0, 1, 2, 3, 4, 5]))
    _, labels = load_labelled(labelled, None, [IMAGE], limit=4)
    assert labels is not None and labels.dtype == np.int64 and list(labels) == [0, 1, 2, 3]
    one_hot = _save(tmp_path / "onehot.npz", x=x, y=np.eye(10)[[3, 1, 4, 1, 5, 9]])
    _, labels = load_labelled(one_hot, None, [IMAGE], limit=10)
    assert labels is not None and list(labels) == [3, 1, 4, 1, 5, 9]


def test_label_count_must_match_before_the_limit_hides_it(tmp_path: Path) -> None:
    uri = _save(tmp_path / "short.npz", x=np.zeros((6, 8, 8, 1), dtype=np.float32), y=np.arange(5))
    with pytest.raises(DataError, match=r"different numbers of samples: \{'x': 6, 'y': 5\}"):
        load_labelled(uri, None, [IMAGE], limit=2)


def test_non_integer_labels_are_refused(tmp_path: Path) -> None:
    uri = _save(tmp_path / "soft.npz", x=np.zeros((2, 8, 8, 1), dtype=np.float32), y=np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="one integer class index per sample"):
        load_labelled(uri, None, [IMAGE], limit=10)


def test_unreadable_missing_and_pickled_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_samples(str(text), None, [IMAGE], limit=1)
    with pytest.raises(DataError, match="no such file"):
        load_samples(str(tmp_path / "absent.npz"), None, [IMAGE], limit=1)
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="without pickle"):
        load_samples(str(pickled), None, [IOSpec("x", "float32", (None,))], limit=1)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((2, 8, 8, 1), dtype=np.float32))
    with pytest.raises(DataError, match=r"single \.npy array"):
        load_samples(str(single), None, [IMAGE], limit=1)


def test_no_x_in_a_single_input_file(tmp_path: Path) -> None:
    uri = _save(tmp_path / "other.npz", images=np.zeros((2, 8, 8, 1), dtype=np.float32))
    with pytest.raises(DataError, match=r"no array named 'x' \(or 'image'\); the file has \['images'\]"):
        load_samples(uri, None, [IMAGE], limit=1)


@pytest.mark.s3
def test_loads_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    from optismith.storage import open_storage

    local = tmp_path / "cal.npz"
    np.savez(local, x=np.ones((5, 8, 8, 1), dtype=np.float32), y=np.arange(5))
    open_storage(f"s3://{s3_bucket}/data").upload_file("cal.npz", local)
    arrays, labels = load_labelled(f"s3://{s3_bucket}/data/cal.npz", None, [IMAGE], limit=3)
    assert arrays[0].shape == (3, 8, 8, 1) and labels is not None and list(labels) == [0, 1, 2]
    with pytest.raises(StorageError, match="no such object"):
        load_samples(f"s3://{s3_bucket}/data/absent.npz", None, [IMAGE], limit=1)
    from optismith.spec import LimitsSpec

    with pytest.raises(DataError, match=r"over spec\.limits\.maxModelSize"):  # refused before the download
        load_samples(f"s3://{s3_bucket}/data/cal.npz", None, [IMAGE], limit=1, limits=LimitsSpec(max_model_size="1k"))
