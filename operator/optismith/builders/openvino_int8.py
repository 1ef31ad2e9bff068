"""OpenVINO int8 by NNCF post-training quantization, with NNCF's accuracy control under our gate.

`nncf.quantize` calibrates the float IR on the calibration samples. The result is checked with the
agreement gate (optismith.models.gate: the evaluate stage's metric without labels) against the source's
(TensorFlow's) outputs on those samples. When it gives up more than spec.selection.constraints.maxAccuracyDrop,
`nncf.quantize_with_accuracy_control` starts again with that gate as its validation function and
`max_drop`: it ranks the quantized ops by their contribution to the drop and returns the most sensitive
ones to float until the gate passes (or its budget ends). The details say which ops stayed float.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from optismith import catalog, tensors
from optismith.builders.base import BuildInputs, Unavailable, run_in_batches
from optismith.builders.openvino import IR_FILE, float_ir
from optismith.models.gate import agreement_drop
from optismith.runs.eligibility import load_options
from optismith.runtimes import get_runtime
from optismith.spec import percent

# Each restoring iteration returns one group of ops to float and validates the whole set again: on two
# cores and MobileNetV2 one iteration takes seconds; beyond this many, int8 has lost what it was for.
MAX_FLOAT_GROUPS = 12
# NNCF's own default calibration subset.
MAX_CALIBRATION_ITEMS = 300


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    missing = get_runtime(variant.runtime).availability()
    if missing:
        raise Unavailable(missing)
    try:
        import nncf
    except ImportError:
        raise Unavailable("nncf not installed: pip install 'optismith[openvino]'") from None
    import openvino as ov

    shared, source = float_ir(inputs)
    model = shared.clone()
    samples = _Samples.of(inputs, model)
    max_drop = percent(inputs.ctx.spec.selection.constraints.max_accuracy_drop)
    calibration = nncf.Dataset(samples.items(), samples.feeds)
    subset = min(len(samples), MAX_CALIBRATION_ITEMS)
    inputs.ctx.progress(f"{variant.name}: NNCF quantize on {len(samples)} calibration items")
    quantized = nncf.quantize(model, calibration, subset_size=subset, target_device=nncf.TargetDevice.CPU)
    plain_metric, plain_drop = samples.gate(ov.compile_model(quantized, "CPU", _F32))
    details: dict[str, Any] = {
        **source, "quantization": "NNCF post-training int8 (nncf.quantize, CPU target)",
        "nncf": metadata.version("nncf"),
        "openvino": metadata.version("openvino"), "calibration": inputs.calibration.describe(),
        "calibration_samples": len(samples), "gate": {"metric": plain_metric, "max_drop": max_drop,
                                                       "validation": "the calibration samples vs TensorFlow"},
        "plain_drop": round(plain_drop, 6), "accuracy_control": False,
    }
    if plain_drop > max_drop:
        inputs.ctx.progress(f"{variant.name}: plain int8 drops {plain_drop:.2%} > {max_drop:.2%}; "
                            "NNCF accuracy control")
        plain_quantized = _int8_ops(quantized)
        quantized = nncf.quantize_with_accuracy_control(
            model, calibration, nncf.Dataset(samples.items()), samples.validate, max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE, subset_size=subset, target_device=nncf.TargetDevice.CPU,
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                max_num_iterations=MAX_FLOAT_GROUPS))
        _, drop = samples.gate(ov.compile_model(quantized, "CPU", _F32))
        details.update(accuracy_control=True, drop=round(drop, 6),
                       kept_float=sorted(plain_quantized - _int8_ops(quantized)),
                       max_float_groups=MAX_FLOAT_GROUPS)
    else:
        details["drop"] = details["plain_drop"]
    details["passes_gate"] = details["drop"] <= max_drop
    int8 = _int8_ops(quantized)
    if not int8:
        kept = details.get("kept_float")
        raise ValueError("no convolution or matmul left in int8" + (
            f": NNCF's accuracy control returned all of them to float to meet the gate ({', '.join(kept)})"
            if kept else ": NNCF quantized none (the model has no weighted op it quantizes)"))
    artifact.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(artifact / IR_FILE), compress_to_fp16=False)
    details["int8_ops"] = len(int8)
    details["op_count"] = len(quantized.get_ops())
    return details


# NNCF validates in f32 (its OVPreparedModel does the same): ops kept float are f32, as the variant runs.
_F32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": min(2, os.cpu_count() or 1)}


class _Samples:
    """The calibration samples, one item per model batch, with the source's outputs on them."""

    def __init__(self, feeds: list[list[np.ndarray]], reference: list[list[np.ndarray]],
                 output_order: list[int]) -> None:
        self._feeds = feeds  # per item: one array per model input, in the model's order
        self._reference = reference  # per item: one array per source output
        self._order = output_order  # the model's output for each source output

    @classmethod
    def of(cls, inputs: BuildInputs, model: Any) -> _Samples:
        calibration = inputs.calibration
        by_name = dict(zip(calibration.names, calibration.arrays, strict=True))
        model_inputs = [port.get_any_name() for port in model.inputs]
        order = tensors.match_names(calibration.names, model_inputs)
        arrays = [np.asarray(by_name[calibration.names[i]], dtype=port.get_element_type().to_dtype())
                  for i, port in zip(order, model.inputs, strict=True)]
        first = model.inputs[0].get_partial_shape()
        step = int(first[0].get_length()) if first.rank.is_static and first[0].is_static else 1
        count = (calibration.samples // step) * step
        if count == 0:
            raise ValueError(f"{calibration.samples} calibration samples are fewer than the model's fixed "
                             f"batch size {step}")
        reference, names = _source_outputs(inputs, {n: a[:count] for n, a in by_name.items()})
        output_order = tensors.match_names([port.get_any_name() for port in model.outputs], names)
        feeds = [[np.ascontiguousarray(a[s:s + step]) for a in arrays] for s in range(0, count, step)]
        refs = [[r[s:s + step] for r in reference] for s in range(0, count, step)]
        return cls(feeds, refs, output_order)

    def __len__(self) -> int:
        return len(self._feeds)

    def items(self) -> list[int]:
        return list(range(len(self._feeds)))

    def feeds(self, item: int) -> list[np.ndarray]:
        return self._feeds[item]

    def _outputs(self, compiled: Any, item: int) -> list[np.ndarray]:
        results = compiled(self._feeds[item])
        ports = list(compiled.outputs)
        return [np.asarray(results[ports[i]]) for i in self._order]

    def validate(self, compiled: Any, items: Iterable[int]) -> tuple[float, list[float]]:
        """NNCF's validation function: the gate's agreement over `items`, and per item (for its ranking)."""
        chosen = list(items)
        outputs = [self._outputs(compiled, item) for item in chosen]
        per_item = [1.0 - agreement_drop(self._reference[i], out)[1] for i, out in zip(chosen, outputs, strict=True)]
        return 1.0 - self._drop(chosen, outputs)[1], per_item

    def gate(self, compiled: Any) -> tuple[str, float]:
        """(metric, drop) over every item, as the evaluate stage scores a variant."""
        chosen = self.items()
        return self._drop(chosen, [self._outputs(compiled, item) for item in chosen])

    def _drop(self, chosen: list[int], outputs: list[list[np.ndarray]]) -> tuple[str, float]:
        joined_ref = [np.concatenate([self._reference[i][k] for i in chosen]) for k in range(len(self._order))]
        joined_out = [np.concatenate([out[k] for out in outputs]) for k in range(len(self._order))]
        return agreement_drop(joined_ref, joined_out)


def _source_outputs(inputs: BuildInputs, arrays: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """The baseline's (TensorFlow's) outputs on the calibration samples, and their names."""
    baseline = catalog.get(catalog.BASELINE)
    runtime = get_runtime(baseline.runtime)
    session = runtime.load(inputs.baseline(), threads=min(2, os.cpu_count() or 1),
                           options=load_options(baseline, inputs.ctx.spec))
    try:
        outputs = run_in_batches(session, tensors.align(arrays, session.inputs))
        return outputs, [spec.name for spec in session.outputs]
    finally:
        session.close()


def _int8_ops(model: Any) -> set[str]:
    """The weighted ops (convolutions, matmuls) that compute in int8: their weights are int8 constants (or
    still behind a FakeQuantize). NNCF's accuracy control returns an op to float weights and all."""
    found = set()
    for op in model.get_ops():
        if op.get_type_name() not in _WEIGHTED or op.get_input_size() < 2:
            continue
        node = op.input(1).get_source_output().get_node()
        while node.get_type_name() in _WEIGHT_PATH:
            if node.get_type_name() == "FakeQuantize":
                found.add(op.get_friendly_name())
                break
            node = node.input(0).get_source_output().get_node()
        else:
            if node.get_type_name() == "Constant" and node.get_element_type().get_type_name() in _INT_TYPES:
                found.add(op.get_friendly_name())
    return found


_WEIGHTED = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData"}
# What lies between a weight constant and its op: NNCF's dequantization (Convert, Subtract, Multiply) and
# layout changes.
_WEIGHT_PATH = {"FakeQuantize", "Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}
_INT_TYPES = {"i8", "u8", "i4", "u4"}
