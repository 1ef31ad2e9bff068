"""Shared fixtures. Heavy ones (a trained model, servers) are session-scoped and built on first use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["tests.fixtures.seaweedfs", "tests.fixtures.prometheus", "tests.harness.fixtures"]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/digits/train.py output: model/ (SavedModel), model.keras, data/{calibration,eval}.npz."""
    from examples.digits.train import build_and_train

    out = tmp_path_factory.mktemp("digits")
    info = build_and_train(out, epochs=8)
    assert info["accuracy"] > 0.9, info
    return out
