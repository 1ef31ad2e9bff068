"""The LiteRT runtime: signature names, batch resizing, int8 I/O at the boundary, threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.runtimes import get_runtime
from optismith.runtimes.tflite import TFLiteRuntime

pytestmark = [
    pytest.mark.tf,
    # The converter calibrates through the deprecated tf.lite.Interpreter; not ours to fix.
    pytest.mark.filterwarnings(r"ignore:\s*Warning. tf\.lite\.Interpreter is deprecated"),
]


def _convert(saved_model: Path, calibration: np.ndarray | None, int8_io: bool, target: Path) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({"image": calibration[i : i + 1]} for i in range(64))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    target.write_bytes(converter.convert())
    return target


@pytest.fixture(scope="module")
def models(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import tensorflow as tf

    out = tmp_path_factory.mktemp("tflite-runtime")
    calibration = np.load(digits_dir / "data" / "calibration.npz")["x"]
    x = np.load(digits_dir / "data" / "eval.npz")["x"][:16]
    loaded = tf.saved_model.load(str(digits_dir / "model"))
    reference = loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy()
    return {
        "fp32": _convert(digits_dir / "model", None, False, out / "fp32.tflite"),
        "int8-io": _convert(digits_dir / "model", calibration, True, out / "int8io.tflite"),
        "x": x,
        "reference": reference,
    }


def test_registered_and_available() -> None:
    assert TFLiteRuntime.availability() is None
    assert "ai-edge-litert" in TFLiteRuntime.versions()


def test_io_is_named_like_the_signature(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=1)
    assert [(s.name, s.dtype, s.shape) for s in session.inputs] == [("image", "float32", (None, 8, 8, 1))]
    assert [(s.name, s.dtype, s.shape) for s in session.outputs] == [("output_0", "float32", (None, 10))]


def test_batches_1_and_8_in_one_session_match_tensorflow(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=2)
    assert session.settings() == {"num_threads": 2}
    x, reference = models["x"], models["reference"]
    for batch in (1, 8, 1, 16):
        (out,) = session.run([x[:batch]])
        assert out.shape == (batch, 10)
        np.testing.assert_allclose(out, reference[:batch], atol=1e-5)


def test_tensors_are_reallocated_only_when_the_batch_changes(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=1)
    interpreter = session._interpreter  # type: ignore[attr-defined]
    calls: list[int] = []
    real = interpreter.allocate_tensors

    def counting() -> None:
        calls.append(1)
        real()

    interpreter.allocate_tensors = counting
    x = models["x"]
    for batch in (1, 1, 8, 8, 8, 1):
        session.run([x[:batch]])
    assert len(calls) == 3


def test_a_ready_feed_skips_conversion_and_any_other_feed_is_converted(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=1)
    converted: list[int] = []
    real = session._run_converted  # type: ignore[attr-defined]
    session._run_converted = lambda feeds: converted.append(1) or real(feeds)  # type: ignore[attr-defined]
    x, reference = models["x"][:4], models["reference"][:4]
    for _ in range(3):
        np.testing.assert_allclose(session.run([x])[0], reference, atol=1e-5)
    assert len(converted) == 1, "a float32, C-ordered feed of the allocated shape should go straight in"
    # Float32 in another memory layout goes straight in too (set_tensor copies it in C order).
    for feed in (np.asfortranarray(x), np.repeat(x, 2, axis=2)[:, :, ::2]):
        np.testing.assert_allclose(session.run([feed])[0], reference, atol=1e-5)
    assert len(converted) == 1
    needs_conversion = [
        x.astype(np.float64),
        x.tolist(),
        x[:2],  # a new shape: reallocates, then the fast path serves that shape
    ]
    for feed in needs_conversion:
        out = session.run([feed])[0]  # type: ignore[list-item]
        np.testing.assert_allclose(out, reference[: len(out)], atol=1e-5)
    assert len(converted) == 1 + len(needs_conversion)
    session.run([x[:2]])
    assert len(converted) == 1 + len(needs_conversion)


def test_outputs_do_not_alias_between_runs(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=1)
    x = models["x"]
    (first,) = session.run([x[:1]])
    kept = first.copy()
    session.run([x[1:2]])
    np.testing.assert_array_equal(first, kept)


def test_int8_io_model_is_fed_and_read_as_float(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["int8-io"], threads=1)
    assert session.inputs[0].dtype == "float32" and session.outputs[0].dtype == "float32"
    x, reference = models["x"], models["reference"]
    for batch in (1, 8):
        (out,) = session.run([x[:batch]])
        assert out.dtype == np.float32 and out.shape == (batch, 10)
    (out,) = session.run([x])
    # Dequantized probabilities: within a few int8 steps, and the same classes.
    assert np.abs(out - reference).max() < 0.05
    assert np.mean(out.argmax(1) == reference.argmax(1)) > 0.9


def test_threads_1_and_2_give_the_same_answer(models: dict[str, Any]) -> None:
    x = models["x"]
    one = TFLiteRuntime.load(models["fp32"], threads=1).run([x])[0]
    two = TFLiteRuntime.load(models["fp32"], threads=2).run([x])[0]
    np.testing.assert_allclose(one, two, atol=1e-6)


def test_wrong_number_of_feeds_is_an_error(models: dict[str, Any]) -> None:
    session = TFLiteRuntime.load(models["fp32"], threads=1)
    with pytest.raises(ValueError, match="expected 1 inputs"):
        session.run([models["x"], models["x"]])


def test_registry_finds_it() -> None:
    assert get_runtime("tflite") is TFLiteRuntime
