"""onnx-int8-mixed: ONNX Runtime static QDQ int8 (builders/onnx.py), with the nodes that quantize worst left out
of quantization (`quantize_static(..., nodes_to_exclude=...)`) when full int8 fails the accuracy gate (the
search: builders/mixed.py).

Sensitivity comes from ONNX Runtime's `qdq_loss_debug`: every intermediate tensor of the float model and of the
full-int8 QDQ model is recorded on calibration samples, and `compute_activation_error` gives each tensor's
SQNR (dB) against the float model's. The error a node adds is the SQNR it loses: its worst input's SQNR minus
its output's (a graph input counts as exact). Ranking by that, rather than by the output's SQNR alone, keeps
depth out of it: error accumulates, so the deepest tensors always have the lowest SQNR.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optismith import catalog
from optismith.builders.base import BuildInputs
from optismith.builders.mixed import Sensitivity, run_search
from optismith.builders.onnx import float_onnx, quantize_static_int8
from optismith.runtimes import get_runtime
from optismith.runtimes.base import Session

METRIC = "sqnr_lost_db"
_DEBUG_SAMPLES = 32
_EXACT_DB = 120.0  # a graph input's SQNR: it is not quantized by the node that reads it


class OnnxMixed:
    metric = METRIC

    def __init__(self, inputs: BuildInputs, variant: catalog.Variant) -> None:
        self.inputs = inputs
        self.variant = variant
        self.source, self.float_details = float_onnx(inputs)
        self.last_details: dict[str, Any] = {}

    def build(self, artifact: Path, keep_float: Sequence[str]) -> None:
        self.last_details = quantize_static_int8(
            self.source, self.float_details, self.inputs.calibration, self.inputs.reference.inputs, artifact,
            method=self.inputs.ctx.spec.calibration.method, nodes_to_exclude=list(keep_float))

    def sensitivity(self, artifact: Path) -> list[Sensitivity]:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader
        from onnxruntime.quantization.qdq_loss_debug import (
            collect_activations,
            compute_activation_error,
            create_activation_matching,
            modify_model_output_intermediate_tensors,
        )

        float_model = artifact.with_name("preprocessed.onnx")
        if not float_model.is_file():
            float_model = self.source
        calibration = self.inputs.calibration
        feed_names = [i.name for i in onnx.load(str(float_model), load_external_data=False).graph.input]

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._batches: Iterator[dict[str, np.ndarray]] = calibration.batches(1)
                self._left = _DEBUG_SAMPLES

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self._batches, None) if self._left > 0 else None
                self._left -= 1
                return None if batch is None else dict(zip(feed_names, batch.values(), strict=True))

        augmented_float = artifact.with_name("debug-float.onnx")
        augmented_qdq = artifact.with_name("debug-qdq.onnx")
        modify_model_output_intermediate_tensors(str(float_model), str(augmented_float))
        modify_model_output_intermediate_tensors(str(artifact), str(augmented_qdq))
        errors = compute_activation_error(create_activation_matching(
            collect_activations(str(augmented_qdq), Reader()), collect_activations(str(augmented_float), Reader())))
        sqnr = {name: float(values["xmodel_err"]) for name, values in errors.items()
                if np.isfinite(values.get("xmodel_err", np.nan))}
        scored = []
        for node in onnx.load(str(float_model), load_external_data=False).graph.node:
            outputs = [sqnr[o] for o in node.output if o in sqnr]
            if not outputs or not node.name:
                continue
            inputs = [sqnr[i] for i in node.input if i in sqnr]
            scored.append(Sensitivity(node.name, min(inputs, default=_EXACT_DB) - min(outputs), node.op_type))
        for path in (augmented_float, augmented_qdq):
            path.unlink(missing_ok=True)
        return scored

    def load(self, artifact: Path) -> Session:
        return get_runtime(self.variant.runtime).load(artifact, threads=min(2, os.cpu_count() or 1))


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    toolchain = OnnxMixed(inputs, variant)
    found = run_search(inputs, toolchain, artifact)
    artifact.with_name("preprocessed.onnx").unlink(missing_ok=True)
    return {**{k: v for k, v in toolchain.last_details.items() if k != "quantization"},
            "quantization": "static QDQ int8 with the most sensitive nodes left in float: per-channel int8 "
                            "weights, uint8 activations", **found}
