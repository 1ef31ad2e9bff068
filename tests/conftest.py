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


def gpu_unavailable_reason() -> str | None:
    """Why the `gpu` tests cannot run here (None when an NVIDIA GPU and ONNX Runtime's CUDA provider are
    both visible): CPU-only CI skips them with this reason."""
    from optismith.measure.gpu import gpu_visible

    if not gpu_visible():
        return "no NVIDIA GPU visible (/dev/nvidia0, /proc/driver/nvidia/gpus)"
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return (f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
                "(install optismith[onnx-gpu])")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    reason = gpu_unavailable_reason()
    if reason is not None:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))
