"""The point of building variants: on a real CNN (MobileNetV2, 224x224, random weights) the TFLite int8
and ONNX Runtime fp32 variants beat the SavedModel baseline at batch 1."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from optismith.runs.layout import variant_artifact
from optismith.runtimes import Session, get_runtime
from optismith.stages.convert import ConvertStage
from optismith.stages.quantize import QuantizeStage
from tests.stages.prepared_run import make_context, prepare_run_from

pytestmark = [pytest.mark.tf, pytest.mark.slow]

ROUNDS = 25
THREADS = 2


def _median_ms(sessions: dict[str, Session], x: np.ndarray) -> dict[str, float]:
    """Interleaved rounds, so load from other processes hits every session alike."""
    for session in sessions.values():
        for _ in range(3):
            session.run([x])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(ROUNDS):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run([x])
            times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def test_tflite_int8_and_onnx_fp32_beat_the_savedmodel_on_mobilenet(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    model.export(str(tmp_path / "mobilenet"), verbose=False)
    import tensorflow as tf

    signature = tf.saved_model.load(str(tmp_path / "mobilenet")).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    x = np.random.default_rng(0).random((4, 224, 224, 3), dtype=np.float32) * 2 - 1
    run = prepare_run_from(tmp_path / "mobilenet", {input_name: x}, tmp_path / "run")
    ctx = make_context(run, tmp_path / "work", ["tflite-int8", "onnx-fp32"], synthetic=True, samples=8)

    quantized = {v.name: v for v in QuantizeStage().run(ctx).variants}["tflite-int8"]
    converted = {v.name: v for v in ConvertStage().run(ctx).variants}["onnx-fp32"]
    assert quantized.status == "built", quantized.reason
    assert converted.status == "built", converted.reason
    assert converted.numerics is not None and converted.numerics.relative_error < 1e-3

    sessions = {
        "tf-savedmodel": get_runtime("tf-savedmodel").load(run / variant_artifact("tf-savedmodel"), threads=THREADS),
        "tflite-int8": get_runtime("tflite").load(run / variant_artifact("tflite-int8"), threads=THREADS),
        "onnx-fp32": get_runtime("onnxruntime").load(run / variant_artifact("onnx-fp32"), threads=THREADS),
    }
    medians = _median_ms(sessions, x[:1])
    timings = ", ".join(f"{name} {ms:.2f}" for name, ms in medians.items())
    print(f"\nMobileNetV2 batch 1, {THREADS} threads, median ms: {timings}")
    baseline = medians["tf-savedmodel"]
    assert medians["tflite-int8"] < baseline, medians
    assert medians["onnx-fp32"] < baseline, medians
