"""TFLite variants of the baseline SavedModel, float to full int8 (catalog options: `quantization`
none / float16 / dynamic-int8 / int8, and `io` float / int8 for full int8).

Every variant converts from the SavedModel's serving signature with
`TFLiteConverter.from_saved_model(dir, signature_keys=[...])`. `from_concrete_functions` is not used:
in TF 2.21 it silently keeps the variables and the model outputs NaN. Recurrent models fall back to a
frozen graph at a fixed batch size (builders/tflite_fixed_batch.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from optismith import catalog, tensors
from optismith.builders import tflite_fixed_batch
from optismith.builders.base import BuildInputs, first_meaningful_line
from optismith.builders.reference import Calibration
from optismith.frameworks import import_tensorflow

_DESCRIPTIONS = {
    "none": "none",
    "float16": "float16 weights",
    "dynamic-int8": "int8 weights, dynamic-range activations",
    "int8": "full int8, {io} input/output",
}


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """Write the TFLite flatbuffer of `variant`; returns the details to record. A model whose loops the
    SavedModel path cannot lower (recurrent layers) is converted again at a fixed batch of 1
    (builders/tflite_fixed_batch.py), and its details say so."""
    tf = import_tensorflow()
    quantization = variant.options["quantization"]
    io = variant.options.get("io", "float")
    if quantization == "int8" and tflite_fixed_batch.has_loops(inputs):
        raise RuntimeError(tflite_fixed_batch.INT8_CRASH)
    details: dict[str, Any] = {"quantization": _DESCRIPTIONS[quantization].format(io=io),
                               "signature": inputs.signature, "tensorflow": tf.__version__}
    converter = tf.lite.TFLiteConverter.from_saved_model(str(inputs.baseline()), signature_keys=[inputs.signature])
    try:
        flatbuffer = _convert(tf, converter, variant, inputs.calibration, _representative(inputs.calibration),
                              details)
    except Exception as error:
        if not tflite_fixed_batch.applies(error):
            raise
        converter, names, fixed = tflite_fixed_batch.converter(inputs, first_meaningful_line(error))
        details.update(fixed)
        flatbuffer = _convert(tf, converter, variant, inputs.calibration,
                              tflite_fixed_batch.representative(inputs.calibration, names), details)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(flatbuffer)
    return details


def _convert(tf: Any, converter: Any, variant: catalog.Variant, calibration: Calibration,
             representative: Callable[[], Iterator[Any]], details: dict[str, Any]) -> bytes:
    quantization = variant.options["quantization"]
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = representative
        # Builtins-int8 only: an op without an int8 kernel fails the variant instead of leaving a
        # float island that would make "full int8" untrue.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        details["calibration"] = calibration.describe()
        details["calibration_samples"] = calibration.samples
        if variant.options.get("io", "float") == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # The converter calibrates through the deprecated tf.lite.Interpreter; users cannot act on that.
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        flatbuffer: bytes = converter.convert()
    return flatbuffer


def _representative(calibration: Calibration) -> Callable[[], Iterator[dict[str, Any]]]:
    # The converter feeds the signature, whose inputs are named without graph suffixes like ':0'.
    def samples() -> Iterator[dict[str, Any]]:
        for batch in calibration.batches(1):
            yield {tensors.bare_name(name): array for name, array in batch.items()}

    return samples
