"""The quantize stage: TFLite variants of the baseline SavedModel, float to full int8.

Every variant converts from the SavedModel's serving signature with
`TFLiteConverter.from_saved_model(dir, signature_keys=[...])`. `from_concrete_functions` is not used:
in TF 2.21 it silently keeps the variables and the model outputs NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from optismith.results import StageRecord, VariantRecord
from optismith.runtimes.tflite import TFLiteRuntime
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.building import (
    Calibration,
    Reference,
    bare_name,
    build_variant,
    load_reference,
    resolve_calibration,
    skipped,
)
from optismith.stages.variants import CATALOG, variant_key

STAGE = "quantize"
TFLITE_VARIANTS = ("tflite-fp32", "tflite-fp16", "tflite-dynamic-int8", "tflite-int8", "tflite-int8-io")
_QUANTIZATION = {
    "tflite-fp32": "none",
    "tflite-fp16": "float16 weights",
    "tflite-dynamic-int8": "int8 weights, dynamic-range activations",
    "tflite-int8": "full int8, float input/output",
    "tflite-int8-io": "full int8, int8 input/output",
}


@register_stage
class QuantizeStage(Stage):
    name = STAGE
    requires = ("inspect",)
    description = "TFLite variants: fp32, fp16, dynamic-range int8, full int8 (float or int8 I/O)."

    def run(self, ctx: StageContext) -> StageRecord:
        wanted = [name for name in ctx.spec.variants if name in TFLITE_VARIANTS]
        if not wanted:
            return new_record(ctx, STAGE, message="no TFLite variants requested")
        baseline = ctx.fetch(variant_key("tf-savedmodel"))
        reference = load_reference(ctx)
        needs_calibration = any(CATALOG[name].needs_calibration for name in wanted)
        calibration = (resolve_calibration(ctx, reference.inputs) if needs_calibration
                       else Calibration("none", None, [], []))
        records = [self._variant(ctx, name, baseline, reference, calibration) for name in wanted]
        built = sum(r.status == "built" for r in records)
        message = f"built {built} of {len(records)} TFLite variants"
        if calibration.source == "synthetic":
            message += " (int8 calibrated on synthetic data)"
        return new_record(ctx, STAGE, message=message, variants=records,
                          payload={"calibration": calibration.payload()})

    def _variant(self, ctx: StageContext, name: str, baseline: Path, reference: Reference,
                 calibration: Calibration) -> VariantRecord:
        if CATALOG[name].needs_calibration and not calibration.available:
            return skipped(name, calibration.unavailable_reason, built_by=STAGE)
        signature = ctx.spec.model.signature

        def build(artifact: Path) -> dict[str, Any]:
            return convert_to_tflite(baseline, signature, name, calibration, artifact)

        return build_variant(ctx, name, build, TFLiteRuntime, reference, built_by=STAGE)


def convert_to_tflite(saved_model: Path, signature: str, variant: str, calibration: Calibration,
                      artifact: Path) -> dict[str, Any]:
    """Write the TFLite flatbuffer for `variant`; returns the details to record."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[signature])
    details: dict[str, Any] = {"quantization": _QUANTIZATION[variant], "signature": signature,
                               "tensorflow": tf.__version__}
    if variant != "tflite-fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "tflite-fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant in ("tflite-int8", "tflite-int8-io"):
        converter.representative_dataset = _representative(calibration)
        # Builtins-int8 only: an op without an int8 kernel fails the variant instead of leaving a
        # float island that would make "full int8" untrue.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        details["calibration"] = calibration.describe()
        details["calibration_samples"] = calibration.samples
    if variant == "tflite-int8-io":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # The converter calibrates through the deprecated tf.lite.Interpreter; users cannot act on that.
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        flatbuffer = converter.convert()
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(flatbuffer)
    return details


def _representative(calibration: Calibration) -> Callable[[], Iterator[dict[str, Any]]]:
    # The converter feeds the signature, whose inputs are named without graph suffixes like ':0'.
    def samples() -> Iterator[dict[str, Any]]:
        for batch in calibration.batches(1):
            yield {bare_name(name): array for name, array in batch.items()}

    return samples
