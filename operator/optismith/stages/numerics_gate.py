"""The numerics gate of the graph-rewriting stages (freeze, optimize): a rewritten graph must compute
what the baseline computes, on the samples inspect saved, within spec.optimize.maxAbsError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from optismith.models.gate import rejection_reason
from optismith.models.numerics import compare_outputs
from optismith.results import VariantRecord
from optismith.runtimes.base import Runtime
from optismith.stages.base import StageContext
from optismith.stages.building import (
    SAMPLE_OUTPUTS_KEY,
    Reference,
    first_meaningful_line,
    load_reference,
    run_in_batches,
)


def sample_outputs(runtime: type[Runtime], artifact: Path, reference: Reference,
                   options: dict[str, Any] | None = None) -> list[np.ndarray]:
    """The artifact's outputs on the sample inputs, in the reference's output order (matched by name:
    the TF runtimes name inputs and outputs by the signature's keys, as the samples are)."""
    session = runtime.load(artifact, threads=min(2, os.cpu_count() or 1), options=options)
    try:
        by_name = dict(zip((info.name for info in reference.inputs), reference.sample_inputs, strict=True))
        results = run_in_batches(session, [by_name[spec.name] for spec in session.inputs])
    finally:
        session.close()
    produced = dict(zip((spec.name for spec in session.outputs), results, strict=True))
    return [produced[info.name] for info in reference.outputs]


def gate_variant(ctx: StageContext, record: VariantRecord, runtime: type[Runtime], artifact: Path,
                 options: dict[str, Any] | None = None) -> VariantRecord:
    """`record` with its numerics, `rejected` when the outputs moved more than the spec allows, or
    `failed` when the runtime cannot run the artifact."""
    if not ctx.store.exists(SAMPLE_OUTPUTS_KEY):
        return record.model_copy(update={"details": {**record.details, "numerics": "not checked: no samples"}})
    reference = load_reference(ctx)
    try:
        outputs = sample_outputs(runtime, artifact, reference, options)
    except Exception as error:
        reason = f"built, but {runtime.name} cannot run it: {first_meaningful_line(error)}"
        return record.model_copy(update={"status": "failed", "reason": reason})
    numerics = compare_outputs(reference.sample_outputs, outputs)
    rejection = rejection_reason(numerics, reference.sample_outputs, float(ctx.spec.optimize.max_abs_error))
    if rejection is None:
        return record.model_copy(update={"numerics": numerics})
    return record.model_copy(update={"numerics": numerics, "status": "rejected", "reason": rejection})
