"""openvino-int8: NNCF post-training int8 on the float IR, checked with the agreement gate against
TensorFlow on the calibration samples; when plain quantization fails the gate, NNCF's accuracy control
returns the most sensitive ops to float until it passes."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith import catalog
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def outlier_cnn(dest: Path) -> tuple[Path, Path]:
    """A CNN whose last convolution has one channel a thousand times the others: per-tensor int8 of the
    dense layer's input rounds every other channel to zero, and the dense layer reads only those. The
    convolutions themselves quantize well. Returns (SavedModel, calibration .npz)."""
    import tensorflow as tf

    keras = tf.keras
    rng = np.random.default_rng(0)
    first = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
    outlier = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
    dense = keras.layers.Dense(10, name="logits")
    image = keras.Input(shape=(8, 8, 1), name="image")
    probabilities = keras.layers.Softmax(name="probabilities")(dense(keras.layers.Flatten()(outlier(first(image)))))
    model = keras.Model(image, probabilities)
    first.set_weights([np.abs(rng.normal(size=(3, 3, 1, 8))).astype("float32"), np.zeros(8, "float32")])
    kernel = rng.normal(size=(3, 3, 8, 8)).astype("float32") * 0.3
    kernel[..., 0] = np.abs(kernel[..., 0]) * 3000.0
    outlier.set_weights([kernel, np.zeros(8, "float32")])
    weights = rng.normal(size=(8 * 8 * 8, 10)).astype("float32") * 3
    weights[0::8] = 0.0  # the outlier channel does not vote
    dense.set_weights([weights, np.zeros(10, "float32")])
    model.export(str(dest / "model"), verbose=False)
    np.savez(dest / "calibration.npz", x=rng.random((64, 8, 8, 1)).astype("float32"))
    return dest / "model", dest / "calibration.npz"


@pytest.fixture(autouse=True)
def _nncf() -> None:
    pytest.importorskip("nncf", reason="nncf not installed (optional: optismith[openvino])")


def test_plain_int8_passes_the_gate_on_the_digits_cnn(digits_dir: Path, tmp_path: Path) -> None:
    verdicts = build_variants(digits_dir / "model", tmp_path, ["openvino-int8"],
                              calibration={"uri": str(digits_dir / "data" / "calibration.npz"), "samples": 100})
    assert verdicts.status("openvino-int8") == "built", verdicts.explain()
    details = verdicts.records["openvino-int8"].details
    assert details["accuracy_control"] is False and details["passes_gate"], details
    assert details["drop"] == details["plain_drop"] <= 0.01 and details["gate"]["metric"] == "agreement"
    assert details["calibration_samples"] == 100 and details["int8_ops"] >= 4  # 3 convolutions, 2 dense
    ir = (tmp_path / "run" / catalog.get("openvino-int8").key / "model.xml").read_text()
    assert "FakeQuantize" in ir and 'element_type="i8"' in ir  # int8 weights, quantized activations


def test_accuracy_control_keeps_the_sensitive_op_in_float(tmp_path: Path) -> None:
    model, calibration = outlier_cnn(tmp_path)
    verdicts = build_variants(model, tmp_path / "build", ["openvino-int8"], calibration={"uri": str(calibration)},
                              selection={"constraints": {"maxAccuracyDrop": "10%"}})
    assert verdicts.status("openvino-int8") == "built", verdicts.explain()
    details = verdicts.records["openvino-int8"].details
    assert details["plain_drop"] > 0.5, details  # plain int8 collapses ...
    assert details["accuracy_control"] and details["passes_gate"] and details["drop"] <= 0.1, details
    assert [name.rsplit("/", 2)[-2:] for name in details["kept_float"]] == [["logits_1", "MatMul"]], details
    assert details["int8_ops"] == 2  # ... and the convolutions stay int8


def test_without_nncf_the_variant_is_skipped_with_the_fix(digits_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_nncf(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "nncf" or name.startswith("nncf."):
            raise ImportError("No module named 'nncf'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nncf)
    verdicts = build_variants(digits_dir / "model", tmp_path, ["openvino-int8"],
                              calibration={"uri": str(digits_dir / "data" / "calibration.npz")})
    record = verdicts.records["openvino-int8"]
    assert record.status == "skipped" and record.reason == "nncf not installed: pip install 'optismith[openvino]'"
