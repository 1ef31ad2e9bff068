"""The ONNX Runtime runtime on a tiny hand-built model: names, dynamic batch, threads, session options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.runtimes import get_runtime
from optismith.runtimes.onnx import OnnxRuntime
from tests.runtimes.tiny_onnx import expected, write_tiny_onnx


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_onnx(tmp_path_factory.mktemp("onnx-runtime") / "tiny.onnx")


def test_available_with_versions() -> None:
    assert OnnxRuntime.availability() is None
    versions = OnnxRuntime.versions()
    assert versions["onnxruntime"][0].isdigit() and "onnx" in versions
    assert get_runtime("onnxruntime") is OnnxRuntime


def test_io_specs(model: Path) -> None:
    session = OnnxRuntime.load(model, threads=1)
    assert [(s.name, s.dtype, s.shape) for s in session.inputs] == [("x", "float32", (None, 4))]
    assert [(s.name, s.dtype, s.shape) for s in session.outputs] == [("y", "float32", (None, 3))]


def test_batches_1_and_8_in_one_session(model: Path) -> None:
    session = OnnxRuntime.load(model, threads=2)
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    for batch in (1, 8, 1):
        (y,) = session.run([x[:batch]])
        assert y.shape == (batch, 3)
        np.testing.assert_allclose(y, expected(x[:batch]), rtol=1e-5, atol=1e-6)


def test_float64_feeds_are_converted(model: Path) -> None:
    session = OnnxRuntime.load(model, threads=1)
    x = np.random.default_rng(2).normal(size=(2, 4))
    (y,) = session.run([x])
    np.testing.assert_allclose(y, expected(x.astype(np.float32)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_and_options_are_honoured(model: Path, threads: int) -> None:
    import onnxruntime as ort

    session = OnnxRuntime.load(model, threads=threads)
    options = session._session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session._session.get_providers() == ["CPUExecutionProvider"]  # type: ignore[attr-defined]


def test_wrong_number_of_feeds_is_an_error(model: Path) -> None:
    session = OnnxRuntime.load(model, threads=1)
    with pytest.raises(ValueError, match="expected 1 inputs"):
        session.run([])
