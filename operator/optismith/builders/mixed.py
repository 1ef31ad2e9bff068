"""Accuracy-aware int8, whatever the runtime: when full int8 fails the accuracy gate, keep the layers that
quantize worst in float and rebuild, until the gate passes or the spec's budget
(spec.calibration.mixedPrecision) ends.

A runtime supplies a `MixedToolchain`: build with a set of layers kept in float (none: full int8), score each
quantized layer's sensitivity once on the full-int8 build, and run an artifact on the gate's samples. The
search and the gate are shared, so TFLite and ONNX Runtime recover under the same rule the evaluate stage
applies (models/gate.py:agreement, drop = 1 - agreement, against spec.selection.constraints.maxAccuracyDrop).
Attempt k keeps the 2^(k-1) most sensitive layers in float (1, 2, 4, ...): the excluded set doubles, so a
budget of n attempts reaches 2^(n-1) layers; the maxFloatFraction cap is tried as the last step.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from optismith import catalog, tensors
from optismith.builders.base import BuildInputs, Unavailable, run_in_batches
from optismith.models.data import load_samples
from optismith.models.gate import agreement
from optismith.models.numerics import compare_outputs
from optismith.runtimes import get_runtime
from optismith.runtimes.base import Session
from optismith.spec import percent, seconds
from optismith.spec.sources import MixedPrecisionSpec

FULL_INT8_PASSES = "full int8 passes the gate; nothing to keep in float"
_EPSILON = 1e-12  # as the select stage compares drops


@dataclass(frozen=True)
class Sensitivity:
    """One quantized layer and how badly it quantizes (higher is worse; the metric says in what unit)."""

    layer: str
    score: float
    op: str = ""


class MixedToolchain(Protocol):
    metric: str  # what Sensitivity.score measures, recorded with the layers kept in float

    def build(self, artifact: Path, keep_float: Sequence[str]) -> None:
        """Write the int8 artifact with `keep_float` (layer names) left in float; none: full int8."""

    def sensitivity(self, artifact: Path) -> list[Sensitivity]:
        """Every quantized layer of the full-int8 `artifact`, scored."""

    def load(self, artifact: Path) -> Session:
        """A session of the artifact in the variant's runtime."""


@dataclass(frozen=True)
class GateResult:
    metric: str
    value: float
    drop: float
    passes: bool

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": round(self.value, 6), "drop": round(self.drop, 6),
                "passes": self.passes}


@dataclass(frozen=True)
class GateData:
    """The inputs the gate is checked on (by input name), the baseline's outputs on them, and the largest drop."""

    inputs: dict[str, np.ndarray]
    reference: list[np.ndarray]
    output_names: list[str]
    max_drop: float
    description: str

    def check(self, session: Session) -> GateResult:
        """The evaluate stage's unlabelled score of the session's outputs against the baseline's, and the
        select stage's accuracy gate on it; closes the session."""
        try:
            outputs = run_in_batches(session, tensors.align(self.inputs, session.inputs))
            order = tensors.match_names([spec.name for spec in session.outputs], self.output_names)
        finally:
            session.close()
        metric, value = agreement(compare_outputs(self.reference, [outputs[i] for i in order]))
        drop = 1.0 - value
        return GateResult(metric, value, drop, drop <= self.max_drop + _EPSILON)


@dataclass
class Budget:
    max_attempts: int
    max_float_layers_fraction: float
    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    @classmethod
    def from_spec(cls, spec: MixedPrecisionSpec, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(spec.max_attempts, percent(spec.max_float_fraction), seconds(spec.time_budget), clock, clock())

    def elapsed(self) -> float:
        return self.clock() - self.started


@dataclass(frozen=True)
class Attempt:
    float_layers: int
    gate: GateResult
    seconds: float

    def describe(self) -> dict[str, Any]:
        return {"float_layers": self.float_layers, **self.gate.describe(), "seconds": round(self.seconds, 2)}


class MixedSearchFailed(Exception):
    """The budget ended before any rebuild passed the gate; the message names the attempts."""


def search(toolchain: MixedToolchain, artifact: Path, data: GateData, budget: Budget) -> dict[str, Any]:
    """Build full int8; if it fails the gate, rebuild with ever more of its most sensitive layers in float.
    Returns the details to record; raises Unavailable (skipped) when full int8 already passes, and
    MixedSearchFailed when the budget ends first."""
    started = budget.clock()
    toolchain.build(artifact, [])
    full = data.check(toolchain.load(artifact))
    max_drop = data.max_drop
    attempts = [Attempt(0, full, budget.clock() - started)]
    if full.passes:
        raise Unavailable(f"{FULL_INT8_PASSES} ({full.metric} {full.value:.4f}, drop {full.drop:.2%} within "
                          f"{max_drop:.2%})")
    ranked = sorted(toolchain.sensitivity(artifact), key=lambda s: s.score, reverse=True)
    # Never every layer: an all-float "int8" model is the fp32 variant, and TFLite's debugger refuses one.
    limit = min(math.floor(budget.max_float_layers_fraction * len(ranked)), len(ranked) - 1)
    stopped = "maxAttempts"
    previous = 0
    for attempt in range(1, budget.max_attempts + 1):
        count = min(2 ** (attempt - 1), limit)  # the last attempt before the cap tries the cap itself
        if count <= previous:
            stopped = f"maxFloatFraction ({limit} of {len(ranked)} quantized layers)"
            break
        previous = count
        if budget.elapsed() >= budget.seconds:
            stopped = "timeBudget"
            break
        kept = ranked[:count]
        started = budget.clock()
        toolchain.build(artifact, [s.layer for s in kept])
        result = data.check(toolchain.load(artifact))
        attempts.append(Attempt(count, result, budget.clock() - started))
        if result.passes:
            return {
                "float_layers": [{"layer": s.layer, "op": s.op, toolchain.metric: round(s.score, 6)} for s in kept],
                "float_layers_reason": f"the {count} of {len(ranked)} quantized layers with the highest "
                                       f"{toolchain.metric} on the full-int8 build",
                "quantized_layers": len(ranked) - count,
                "attempts": [a.describe() for a in attempts],
                "gate": result.describe(), "full_int8_gate": full.describe(),
            }
    tried = "; ".join(f"{a.float_layers} float: drop {a.gate.drop:.2%}" for a in attempts)
    raise MixedSearchFailed(f"no rebuild passed the gate (max drop {max_drop:.2%}) before the budget ended at "
                            f"{stopped}: {tried}. Raise spec.calibration.mixedPrecision limits or the drop")


def gate_data(inputs: BuildInputs) -> GateData:
    """What the evaluate stage scores: spec.evaluation.uri's inputs (at most evaluation.samples) when it is set,
    else the inspect stage's samples; the reference is the baseline's outputs on them. Labels are not read:
    the search gates on agreement with the baseline, which bounds a labelled accuracy drop only in practice."""
    spec = inputs.ctx.spec
    reference = inputs.reference
    max_drop = percent(spec.selection.constraints.max_accuracy_drop)
    names = [info.name for info in reference.outputs]
    if spec.evaluation.uri:
        arrays = load_samples(spec.evaluation.uri, spec.storage, reference.inputs, spec.evaluation.samples,
                              limits=spec.limits)
        feeds = dict(zip((info.name for info in reference.inputs), arrays, strict=True))
        baseline = get_runtime(catalog.get(catalog.BASELINE).runtime).load(inputs.baseline(), threads=_threads())
        try:
            outputs = run_in_batches(baseline, tensors.align(feeds, baseline.inputs))
            order = tensors.match_names([o.name for o in baseline.outputs], names)
        finally:
            baseline.close()
        count = int(arrays[0].shape[0])
        return GateData(feeds, [outputs[i] for i in order], names, max_drop,
                        f"{count} samples of {spec.evaluation.uri} (spec.evaluation.uri), against the baseline")
    if not reference.has_samples:
        raise Unavailable("needs sample inputs to check the accuracy gate while it searches: set "
                          "spec.evaluation.uri (the inspect stage could invent none for this model's inputs)")
    count = int(np.asarray((reference.sample_inputs or [])[0]).shape[0])
    return GateData(reference.inputs_by_name(), list(reference.sample_outputs or []), names, max_drop,
                    f"the inspect stage's {count} sample inputs (no spec.evaluation.uri), against the baseline")


def _threads() -> int:
    return min(2, os.cpu_count() or 1)


def run_search(inputs: BuildInputs, toolchain: MixedToolchain, artifact: Path) -> dict[str, Any]:
    """`search` under the spec's gate and budget, on the evaluate stage's data; the details to record."""
    data = gate_data(inputs)
    found = search(toolchain, artifact, data, Budget.from_spec(inputs.ctx.spec.calibration.mixed_precision))
    return {"calibration": inputs.calibration.describe(), "calibration_samples": inputs.calibration.samples,
            "gate_samples": data.description, "max_accuracy_drop": data.max_drop, **found}
