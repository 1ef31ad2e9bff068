"""Shared fixtures. Heavy ones (a trained model, servers) are session-scoped and built on first use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "digits"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["fixtures.seaweedfs", "fixtures.prometheus", "harness.fixtures"]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/digits/train.py output: model/ (SavedModel), model.keras, data/{calibration,eval}.npz."""
    from train import build_and_train

    out = tmp_path_factory.mktemp("digits")
    info = build_and_train(out, epochs=8)
    assert info["accuracy"] > 0.9, info
    return out
