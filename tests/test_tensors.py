"""Tensors by name: one matcher for every runtime's naming, batches that tile, seeded invented inputs."""

from __future__ import annotations

import numpy as np
import pytest

from optismith import tensors
from optismith.errors import DataError
from optismith.results import TensorInfo
from optismith.runtimes.base import IOSpec


@pytest.mark.parametrize(
    ("available", "wanted", "expected"),
    [
        (["image", "mask"], ["mask", "image"], [1, 0]),  # exact
        (["image:0", "mask:0"], ["mask", "image"], [1, 0]),  # without the tensor index
        (["serving_default_image:0", "serving_default_mask:0"], ["mask:0", "image"], [1, 0]),  # TFLite's prefix
        (["input_1"], ["image"], [0]),  # nothing matches by name, same count: by position
    ],
)
def test_names_match_exactly_then_loosely_then_by_position(available: list[str], wanted: list[str],
                                                           expected: list[int]) -> None:
    assert tensors.match_names(available, wanted) == expected


def test_a_partial_match_never_falls_back_to_position() -> None:
    with pytest.raises(tensors.NameMismatch, match=r"no tensors named \['labels'\]"):
        tensors.match_names(["image", "other"], ["image", "labels"])


def test_align_orders_and_casts_for_the_session() -> None:
    specs = [IOSpec("b", "int32", (None,)), IOSpec("a", "float32", (None, 2))]
    aligned = tensors.align({"a:0": np.ones((3, 2), dtype=np.float64), "b:0": np.arange(3)}, specs)
    assert [a.dtype for a in aligned] == [np.int32, np.float32]
    with pytest.raises(DataError, match="name the arrays"):
        tensors.align({"x": np.ones(3), "y": np.ones(3), "z": np.ones(3)}, specs)


def test_batches_tile_when_there_are_fewer_samples() -> None:
    (batch,) = tensors.batch_of([np.arange(3)], 5, start=2)
    np.testing.assert_array_equal(batch, [2, 0, 1, 2, 0])
    assert batch.flags["C_CONTIGUOUS"]


def test_invented_inputs_match_the_signature_and_are_reproducible() -> None:
    inputs = [
        TensorInfo(name="image", dtype="float32", shape=[None, 8, 8, 1]),
        TensorInfo(name="ids", dtype="int64", shape=[None, None]),
        TensorInfo(name="mask", dtype="bool", shape=[None, 4]),
    ]
    samples = tensors.synthetic(inputs, 5, seed=3)
    assert samples["image"].shape == (5, 8, 8, 1) and samples["image"].dtype == np.float32
    assert 0.0 <= samples["image"].min() and samples["image"].max() < 1.0 and samples["image"].std() > 0.1
    assert samples["ids"].shape == (5, tensors.DYNAMIC_DIM) and samples["ids"].dtype == np.int64
    assert samples["ids"].min() >= 0 and samples["ids"].max() < 10
    assert samples["mask"].dtype == np.bool_
    again = tensors.synthetic(inputs, 5, seed=3)
    assert all(np.array_equal(samples[k], again[k]) for k in samples)
    assert not np.array_equal(tensors.synthetic(inputs, 5, seed=4)["image"], samples["image"])


def test_calibration_refuses_to_invent_free_dimensions() -> None:
    with pytest.raises(DataError, match=r"dimension 1 of its shape \(N, N\) is not fixed"):
        tensors.synthetic([IOSpec("tokens", "int64", (None, None))], 4, dynamic=None)


def test_inputs_without_a_numeric_dtype_cannot_be_invented() -> None:
    with pytest.raises((DataError, TypeError)):
        tensors.synthetic([TensorInfo(name="text", dtype="string", shape=[None])], 2)
