"""TF-TRT variants of the baseline SavedModel (catalog option: `precision` FP16 / INT8). They need a GPU and
a TensorRT-enabled TensorFlow where they are built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optismith import catalog, tensors
from optismith.builders.base import BuildInputs, Unavailable
from optismith.frameworks import import_tensorflow

NO_GPU = "TF-TRT needs a GPU: none visible to TensorFlow here (run on a gpu target)"
_CALIBRATION_BATCH = 8


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    tf = import_tensorflow()
    if not tf.config.list_physical_devices("GPU"):
        raise Unavailable(NO_GPU)
    precision = variant.options["precision"]
    int8 = precision == "INT8"
    trt = tf.experimental.tensorrt
    params = trt.ConversionParams(precision_mode=precision, use_calibration=int8)
    converter = trt.Converter(input_saved_model_dir=str(inputs.baseline()),
                              input_saved_model_signature_key=inputs.signature, conversion_params=params)
    if int8:
        def calibration_input() -> Iterator[dict[str, Any]]:
            for batch in inputs.calibration.batches(_CALIBRATION_BATCH):
                yield {tensors.bare_name(n): tf.constant(a) for n, a in batch.items()}

        converter.convert(calibration_input_fn=calibration_input)
    else:
        converter.convert()
    converter.save(str(artifact))
    details: dict[str, Any] = {"precision": precision, "tensorflow": tf.__version__}
    if int8:
        details["calibration"] = inputs.calibration.describe()
        details["calibration_samples"] = inputs.calibration.samples
    return details
