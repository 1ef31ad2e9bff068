"""Seeded sample inputs for numerics checks."""

from __future__ import annotations

import numpy as np
import pytest

from optismith.models.samples import DYNAMIC_DIM, make_samples
from optismith.results import TensorInfo


def test_samples_match_the_signature_and_are_reproducible() -> None:
    inputs = [
        TensorInfo(name="image", dtype="float32", shape=[None, 8, 8, 1]),
        TensorInfo(name="ids", dtype="int64", shape=[None, None]),
        TensorInfo(name="mask", dtype="bool", shape=[None, 4]),
    ]
    samples = make_samples(inputs, count=5, seed=3)
    assert samples["image"].shape == (5, 8, 8, 1) and samples["image"].dtype == np.float32
    assert 0.0 <= samples["image"].min() and samples["image"].max() < 1.0
    assert samples["ids"].shape == (5, DYNAMIC_DIM) and samples["ids"].dtype == np.int64
    assert samples["ids"].min() >= 0 and samples["ids"].max() < 10
    assert samples["mask"].dtype == np.bool_
    again = make_samples(inputs, count=5, seed=3)
    assert all(np.array_equal(samples[k], again[k]) for k in samples)
    assert not np.array_equal(make_samples(inputs, count=5, seed=4)["image"], samples["image"])


def test_inputs_without_a_numpy_dtype_cannot_be_invented() -> None:
    with pytest.raises(TypeError):
        make_samples([TensorInfo(name="text", dtype="string", shape=[None])])
