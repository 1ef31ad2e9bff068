"""The OpenVINO runtime: a clear reason without the package; with it, an IR runs in f32 on CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.runtimes import get_runtime
from optismith.runtimes.openvino import OpenVINORuntime, ir_path
from tests.runtimes.tiny_onnx import expected, write_tiny_onnx


def test_without_the_package_it_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from importlib import util

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    reason = OpenVINORuntime.availability()
    assert reason is not None and reason.startswith("openvino not installed")
    with pytest.raises(RuntimeError, match="openvino not installed"):
        OpenVINORuntime.load(tmp_path / "model.xml", threads=1)


def test_registered() -> None:
    assert get_runtime("openvino") is OpenVINORuntime


def test_ir_path_accepts_the_directory_or_the_xml(tmp_path: Path) -> None:
    (tmp_path / "model.xml").write_text("<net/>")
    assert ir_path(tmp_path) == tmp_path / "model.xml"
    assert ir_path(tmp_path / "model.xml") == tmp_path / "model.xml"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"expected one OpenVINO \.xml"):
        ir_path(empty)


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ov = pytest.importorskip("openvino", reason="openvino not installed (optional)")
    root = tmp_path_factory.mktemp("openvino-runtime")
    model = ov.convert_model(str(write_tiny_onnx(root / "tiny.onnx")))
    ov.save_model(model, str(root / "ir" / "model.xml"), compress_to_fp16=False)
    return root / "ir"


def test_runs_batches_1_and_8_in_f32(ir: Path) -> None:
    assert OpenVINORuntime.availability() is None
    assert "openvino" in OpenVINORuntime.versions()
    session = OpenVINORuntime.load(ir, threads=2)
    assert [(s.name, s.dtype, s.shape) for s in session.inputs] == [("x", "float32", (None, 4))]
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    results = []
    for batch in (1, 8, 1):
        (y,) = session.run([x[:batch]])
        assert y.shape == (batch, 3)
        np.testing.assert_allclose(y, expected(x[:batch]), rtol=1e-6, atol=1e-6)
        results.append(y)
    np.testing.assert_array_equal(results[0], results[2])  # outputs are copies, not reused buffers


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_are_honoured(ir: Path, threads: int) -> None:
    session = OpenVINORuntime.load(ir, threads=threads)
    assert session.threads == threads  # type: ignore[attr-defined]


def test_the_precision_option_is_the_hint_the_compiled_model_reports(ir: Path) -> None:
    from optismith.measure.cpu_features import host_flags, shortfall

    f32 = OpenVINORuntime.load(ir, threads=1, options={"precision": "f32"})
    assert f32.precision == "f32" and f32.execution()["inference_precision"] == "f32"  # type: ignore[attr-defined]
    assert OpenVINORuntime.load(ir, threads=1).precision == "f32"  # type: ignore[attr-defined]  # never bf16 by default
    if shortfall(["avx512_bf16|amx_bf16"], host_flags()) is None:
        bf16 = OpenVINORuntime.load(ir, threads=1, options={"precision": "bf16"})
        assert bf16.precision == "bf16"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"unknown precision option 'fp32'; known: f32, bf16, f16"):
        OpenVINORuntime.load(ir, threads=1, options={"precision": "fp32"})
