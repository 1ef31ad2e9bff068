"""tflite-int8-mixed: TFLite full int8, with the layers that quantize worst kept in float when full int8
fails the accuracy gate (the search: builders/mixed.py).

Every build goes through `tf.lite.experimental.QuantizationDebugger`, constructed from a converter with
`optimizations` and `representative_dataset` set (it calibrates and builds its instrumented model from it) and
with its `denylisted_nodes` in the options it is constructed with: `get_nondebug_quantized_model()` converts
with those options, and a debugger whose every layer is denylisted refuses to start ("Please check if the
quantized model is in debug mode"), which the search never asks for. Sensitivity is the debugger's per-layer
statistic from TensorFlow's own guide: the RMSE between each quantized op's output and the float op's on the
same inputs, divided by the output's quantization scale (about 0.29 is rounding alone; more is worse).
Float layers need float kernels, so the mixed model allows TFLITE_BUILTINS next to TFLITE_BUILTINS_INT8.
TFLite calibrates min-max only: spec.calibration.method applies to ONNX and is recorded as not applied here.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optismith import catalog, tensors
from optismith.builders import tflite_fixed_batch
from optismith.builders.base import BuildInputs
from optismith.builders.mixed import Sensitivity, run_search
from optismith.builders.tflite import _representative
from optismith.frameworks import import_tensorflow
from optismith.runtimes import get_runtime
from optismith.runtimes.base import Session

METRIC = "rmse_over_scale"


class TFLiteMixed:
    metric = METRIC

    def __init__(self, inputs: BuildInputs, variant: catalog.Variant) -> None:
        self.inputs = inputs
        self.variant = variant
        self.tf = import_tensorflow()

    def _converter(self) -> Any:
        tf = self.tf
        converter = tf.lite.TFLiteConverter.from_saved_model(str(self.inputs.baseline()),
                                                             signature_keys=[self.inputs.signature])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(self.inputs.calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter

    def _debugger(self, denylisted: Sequence[str] = (), **options: Any) -> Any:
        lite = self.tf.lite.experimental
        debug_options = lite.QuantizationDebugOptions(denylisted_nodes=list(denylisted) or None, **options)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            return lite.QuantizationDebugger(converter=self._converter(), debug_dataset=self._debug_dataset,
                                             debug_options=debug_options)

    def _debug_dataset(self) -> Iterator[list[np.ndarray]]:
        # The debugger feeds its interpreter positionally, in the converted model's input order.
        order = self._input_order()
        for batch in self.inputs.calibration.batches(1):
            arrays = list(batch.values())
            yield [arrays[i] for i in order]

    def _input_order(self) -> list[int]:
        interpreter = self.tf.lite.Interpreter(model_content=self._float_flatbuffer())
        names = [detail["name"] for detail in interpreter.get_input_details()]
        runner_names = list(interpreter.get_signature_list().get(self.inputs.signature, {}).get("inputs", []))
        wanted = [tensors.bare_name(n) for n in self.inputs.calibration.names]
        return tensors.match_names(wanted, runner_names or names)

    def _float_flatbuffer(self) -> bytes:
        def convert() -> bytes:
            converter = self.tf.lite.TFLiteConverter.from_saved_model(str(self.inputs.baseline()),
                                                                      signature_keys=[self.inputs.signature])
            return bytes(converter.convert())

        made: bytes = self.inputs.shared("float TFLite model", convert)
        return made

    def build(self, artifact: Path, keep_float: Sequence[str]) -> None:
        debugger = self._debugger(keep_float)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            flatbuffer = debugger.get_nondebug_quantized_model()
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_bytes(flatbuffer)

    def sensitivity(self, artifact: Path) -> list[Sensitivity]:
        debugger = self._debugger()
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
        dump.seek(0)
        scored = []
        for row in csv.DictReader(dump):
            scale = float(row.get("scale") or 0.0)
            mse = float(row.get("mean_squared_error") or 0.0)
            if scale > 0 and np.isfinite(mse):
                scored.append(Sensitivity(row["tensor_name"], float(np.sqrt(mse) / scale), row.get("op_name", "")))
        return scored

    def load(self, artifact: Path) -> Session:
        return get_runtime(self.variant.runtime).load(artifact, threads=min(2, os.cpu_count() or 1))


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    tf = import_tensorflow()
    if tflite_fixed_batch.has_loops(inputs):  # the debugger calibrates like full int8 does, and crashes alike
        raise RuntimeError(tflite_fixed_batch.INT8_CRASH)
    found = run_search(inputs, TFLiteMixed(inputs, variant), artifact)
    return {"quantization": "int8 with the most sensitive layers in float, float input/output",
            "signature": inputs.signature, "tensorflow": tf.__version__,
            "calibration_method": "min-max (TFLite's only one; spec.calibration.method applies to ONNX)", **found}
