"""spec.calibration.method picks ONNX Runtime's CalibrationMethod for static int8, recorded in the details."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.builders import onnx as onnx_builder
from optismith.builders.reference import Calibration
from optismith.results import TensorInfo
from optismith.spec import ModelOptimizationSpec


def _tiny_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], np.ones((4, 2), np.float32).ravel().tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(("method", "expected"), [("minmax", "MinMax"), ("entropy", "Entropy"),
                                                  ("percentile", "Percentile")])
def test_the_spec_method_reaches_quantize_static(tmp_path: Path, method: str, expected: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization as quantization

    seen: dict[str, Any] = {}
    monkeypatch.setattr(quantization, "quantize_static", lambda *args, **kwargs: seen.update(kwargs))
    source = _tiny_model(tmp_path / "float.onnx")
    calibration = Calibration("synthetic", None, ["x"], [np.ones((8, 4), np.float32)])
    artifact = tmp_path / "out" / "model.onnx"
    artifact.parent.mkdir()
    monkeypatch.setattr("onnx.load", lambda *a, **k: __import__("onnx").load_model(str(source)))
    details = onnx_builder.quantize_static_int8(source, {}, calibration, [TensorInfo(name="x", dtype="float32",
                                                                                        shape=[None, 4])],
                                                artifact, method=method, nodes_to_exclude=["matmul"])
    assert seen["calibrate_method"].name == expected
    assert seen["nodes_to_exclude"] == ["matmul"]
    assert details["calibration_method"] == method


def test_the_default_method_is_what_static_int8_always_used() -> None:
    assert ModelOptimizationSpec.model_validate({"model": {"uri": "m"}, "output": {"uri": "o"}}) \
        .calibration.method == "minmax"
