"""What every variant is built from and checked against: the reference samples (the baseline's inputs and
outputs, saved by the inspect stage) and the calibration data for int8."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from optismith import catalog, tensors
from optismith.errors import DataError
from optismith.graphio import GraphIO
from optismith.models.data import load_samples
from optismith.results import TensorInfo
from optismith.runs import layout
from optismith.runs.stage import StageContext

NO_CALIBRATION_REASON = "needs calibration data: set spec.calibration.uri or calibration.synthetic: true"
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class Reference:
    """The source model's inputs and outputs, and its outputs on the sample inputs (None when the inspect
    stage could invent no inputs, e.g. for string tensors: numerics are then not checked)."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    sample_inputs: list[np.ndarray] | None  # in `inputs` order
    sample_outputs: list[np.ndarray] | None  # in `outputs` order

    @property
    def has_samples(self) -> bool:
        return self.sample_inputs is not None and self.sample_outputs is not None

    def inputs_by_name(self) -> dict[str, np.ndarray]:
        return dict(zip((i.name for i in self.inputs), self.sample_inputs or [], strict=True))


@dataclass(frozen=True)
class Calibration:
    source: Literal["file", "synthetic", "none"]
    uri: str | None
    names: list[str]
    arrays: list[np.ndarray]  # one per name, samples first
    problem: str | None = None  # why there is none although synthetic data was allowed

    @property
    def available(self) -> bool:
        return self.source != "none"

    @property
    def unavailable_reason(self) -> str:
        return self.problem or NO_CALIBRATION_REASON

    @property
    def samples(self) -> int:
        return int(self.arrays[0].shape[0]) if self.arrays else 0

    def describe(self) -> str:
        """What a variant's details["calibration"] says: "synthetic" or the file's URI."""
        return "synthetic" if self.source == "synthetic" else str(self.uri)

    def payload(self) -> dict[str, Any]:
        return {"source": self.source, "uri": self.uri, "samples": self.samples}

    def batches(self, batch_size: int, *, complete_only: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """Batches keyed by input name; `complete_only` drops a short last batch (fixed-batch models)."""
        for start in range(0, self.samples, batch_size):
            if complete_only and start + batch_size > self.samples:
                return
            yield {name: array[start:start + batch_size] for name, array in zip(self.names, self.arrays,
                                                                               strict=True)}


NO_CALIBRATION = Calibration("none", None, [], [])


def _tensor_info(tensor: Any) -> TensorInfo:
    return TensorInfo(name=tensor.name, dtype=tensor.dtype, shape=list(tensor.shape))


def _info_from_array(name: str, array: np.ndarray) -> TensorInfo:
    return TensorInfo(name=name, dtype=array.dtype.name, shape=[None, *(int(d) for d in array.shape[1:])])


def _ordered(arrays: dict[str, np.ndarray], infos: Sequence[TensorInfo], key: str) -> list[np.ndarray]:
    try:
        order = tensors.match_names(list(arrays), [info.name for info in infos])
    except tensors.NameMismatch as error:
        raise ValueError(f"{key}: {error}") from None
    values = list(arrays.values())
    return [values[i] for i in order]


def load_reference(ctx: StageContext) -> Reference:
    """Sample inputs and the baseline's outputs (written by inspect); shapes from the frozen graph's
    io.json when freeze wrote one, since it keeps dynamic dimensions the samples cannot show."""
    sample_inputs = ctx.read_arrays(layout.SAMPLE_INPUTS)
    sample_outputs = ctx.read_arrays(layout.SAMPLE_OUTPUTS)
    frozen_io = layout.graph_io("tf-frozen")
    if ctx.store.exists(frozen_io):
        described = GraphIO.from_json(json.loads(ctx.store.read_bytes(frozen_io)))
        inputs = [_tensor_info(t) for t in described.inputs]
        outputs = [_tensor_info(t) for t in described.outputs]
    elif sample_inputs is not None and sample_outputs is not None:
        inputs = [_info_from_array(name, array) for name, array in sample_inputs.items()]
        outputs = [_info_from_array(name, array) for name, array in sample_outputs.items()]
    else:
        source = ctx.record("inspect").payload.get("source", {})
        inputs = [TensorInfo.model_validate(t) for t in source.get("inputs", [])]
        outputs = [TensorInfo.model_validate(t) for t in source.get("outputs", [])]
    if sample_inputs is None or sample_outputs is None:
        return Reference(inputs, outputs, None, None)
    return Reference(inputs, outputs, _ordered(sample_inputs, inputs, layout.SAMPLE_INPUTS),
                     _ordered(sample_outputs, outputs, layout.SAMPLE_OUTPUTS))


def resolve_calibration(ctx: StageContext, inputs: Sequence[TensorInfo]) -> Calibration:
    """The spec's calibration file (a DataError if it does not fit the model), else synthetic data when
    allowed and possible, else none."""
    spec = ctx.spec.calibration
    names = [info.name for info in inputs]
    if spec.uri:
        ctx.progress(f"loading calibration data from {spec.uri}")
        arrays = load_samples(spec.uri, ctx.spec.storage, inputs, spec.samples, limits=ctx.spec.limits)
        return Calibration("file", spec.uri, names, arrays)
    if spec.synthetic:
        try:
            invented = tensors.synthetic(inputs, spec.samples, SYNTHETIC_SEED, dynamic=None,
                                         where="spec.calibration.synthetic")
        except DataError as error:  # only the int8 variants need it: they are skipped, the rest still build
            return Calibration("none", None, names, [], problem=f"needs calibration data: {error.message}")
        return Calibration("synthetic", None, names, [invented[name] for name in names])
    return Calibration("none", None, names, [])


def calibration_for(ctx: StageContext, variants: Sequence[catalog.Variant], reference: Reference) -> Calibration:
    """Calibration data, resolved only when one of `variants` needs it."""
    if any(v.calibration for v in variants):
        return resolve_calibration(ctx, reference.inputs)
    return NO_CALIBRATION
