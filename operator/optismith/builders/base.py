"""Building one variant without letting its failure fail the stage.

A builder is the callable a catalog entry names (`builder="optismith.builders.tflite:build"`): it gets the
BuildInputs (the baseline, the frozen graph, the float ONNX model, the calibration data, all made lazily
and at most once per stage) and the catalog entry, writes the artifact at the path it is given, and
returns the details to record. It raises Unavailable when the variant cannot be built here (a missing
package, no GPU): the variant is then `skipped` with that reason. Anything else it raises makes the
variant `failed`, with the converter's one meaningful line as the reason.

After a build, the artifact runs on the sample inputs through the variant's runtime: non-finite outputs
reject it, and for graph rewrites (catalog `exact`) so does any difference beyond spec.optimize.maxAbsError.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optismith import catalog, lazy, tensors
from optismith.builders.reference import Calibration, Reference
from optismith.graphio import GraphIO
from optismith.models.freezing import freeze_saved_model, read_graph
from optismith.models.gate import rejection_reason
from optismith.models.numerics import compare_outputs
from optismith.results import VariantRecord
from optismith.runs import layout
from optismith.runs.eligibility import load_options
from optismith.runs.stage import StageContext
from optismith.runtimes import get_runtime
from optismith.runtimes.base import Session

_LOWERED_CONTROL_FLOW = {"Switch", "Merge"}
_FUNCTIONAL_LOOP = {"While", "StatelessWhile"}
_NUMERICS_BATCH = 32  # bounds memory when the samples are many or large
_MLIR_LOCATION = re.compile(r"^loc\(.*?\):\s+")  # 'loc(callsite(fused[...])): <message>'


class Unavailable(Exception):
    """The variant cannot be built here; the message says why (it becomes the skip reason)."""


Builder = Callable[["BuildInputs", catalog.Variant, Path], dict[str, Any]]


@dataclass
class BuildInputs:
    """What builders start from. Intermediates are made on first use and shared by the stage's variants;
    a failed intermediate fails every variant that needs it, with the same reason, without retrying."""

    ctx: StageContext
    reference: Reference
    calibration: Calibration
    _made: dict[str, Any] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        return self.ctx.spec.model.signature

    def shared(self, name: str, make: Callable[[], Any]) -> Any:
        """`make()`'s result, computed once per stage; its failure is remembered and re-raised."""
        if name in self._failed:
            raise RuntimeError(f"needs the {name}, whose build failed: {self._failed[name]}")
        if name not in self._made:
            try:
                self._made[name] = make()
            except Exception as error:
                self._failed[name] = first_meaningful_line(error)
                raise
        return self._made[name]

    def baseline(self) -> Path:
        """The baseline SavedModel directory."""
        path: Path = self.shared("baseline", lambda: self.ctx.fetch(layout.variant_artifact(catalog.BASELINE)))
        return path

    def frozen(self) -> tuple[Any, GraphIO, str]:
        """(GraphDef, its signature, where it came from): the freeze stage's graph, or a fresh freeze of the
        baseline when that stage wrote none."""
        def make() -> tuple[Any, GraphIO, str]:
            key, io_key = layout.variant_artifact("tf-frozen"), layout.graph_io("tf-frozen")
            if self.ctx.store.exists(key) and self.ctx.store.exists(io_key):
                self.ctx.fetch(io_key)
                graph_def, io = read_graph(self.ctx.fetch(key))
                return graph_def, io, key
            frozen = freeze_saved_model(self.baseline(), self.signature)
            return frozen.graph_def, frozen.io, "the baseline, frozen by this stage"

        result: tuple[Any, GraphIO, str] = self.shared("frozen graph", make)
        return result

    def functional_frozen(self) -> tuple[Any, GraphIO, str]:
        """The frozen graph with functional control flow: the freeze stage lowers While loops to
        Switch/Merge, where tf2onnx's LSTM/GRU rewriters and TFLite's tensor-list legalization no longer
        see a loop. A graph without Switch/Merge (no control flow, as in CNNs) or whose loops are TF1's own is
        the freeze stage's."""
        def make() -> tuple[Any, GraphIO, str]:
            graph_def, io, source = self.frozen()
            if not _LOWERED_CONTROL_FLOW & {node.op for node in graph_def.node}:
                return graph_def, io, source
            frozen = freeze_saved_model(self.baseline(), self.signature, lower_control_flow=False)
            if not _FUNCTIONAL_LOOP & {node.op for node in frozen.graph_def.node}:
                return graph_def, io, source  # a TF1 loop: Switch/Merge in the source already
            return frozen.graph_def, frozen.io, "the baseline, frozen with its While loops kept functional"

        result: tuple[Any, GraphIO, str] = self.shared("frozen graph with functional control flow", make)
        return result


def first_meaningful_line(error: BaseException) -> str:
    """Converter errors run to pages of MLIR locations and stack frames; keep the line that says what
    went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    noise = ("Traceback", "File ", "^", "<unknown>:0: note", "note:", "Exception encountered", "---")
    useful = [line for line in lines if not line.startswith(noise)]
    flagged = [line for line in useful if "error:" in line.lower()]
    chosen = (flagged or useful or [type(error).__name__])[0]
    chosen = chosen.split("error: ", 1)[-1] if "error: " in chosen else chosen
    chosen = _MLIR_LOCATION.sub("", chosen)
    return f"{type(error).__name__}: {chosen}"[:400]


def skipped(variant: catalog.Variant, reason: str) -> VariantRecord:
    return VariantRecord(name=variant.name, runtime=variant.runtime, status="skipped", reason=reason,
                         built_by=variant.stage)


def build_variant(inputs: BuildInputs, variant: catalog.Variant, builder: Builder | None = None) -> VariantRecord:
    """Build (with the catalog's builder unless one is given), publish, check numerics. A failure becomes
    the variant's status, never the stage's."""
    ctx = inputs.ctx
    if variant.gpu and not any(target.kind == "gpu" for target in ctx.spec.targets):
        return skipped(variant, "runs only on GPU targets, and spec.targets has none")
    if variant.calibration and not inputs.calibration.available:
        return skipped(variant, inputs.calibration.unavailable_reason)
    ctx.progress(f"building {variant.name}")
    artifact = ctx.scratch(variant.name) / variant.artifact
    started = time.perf_counter()
    try:
        build: Builder = builder or lazy.load(variant.builder)
        details = build(inputs, variant, artifact)
    except Unavailable as reason:
        return skipped(variant, str(reason))
    except Exception as error:
        return VariantRecord(name=variant.name, runtime=variant.runtime, status="failed", built_by=variant.stage,
                             build_seconds=time.perf_counter() - started, reason=first_meaningful_line(error))
    build_seconds = time.perf_counter() - started
    size = ctx.publish(variant.key, artifact)
    if artifact.parent.joinpath(layout.GRAPH_IO_FILE).is_file() and artifact.is_file():
        ctx.publish(layout.graph_io(variant.name), artifact.parent / layout.GRAPH_IO_FILE)
    record = VariantRecord(name=variant.name, runtime=variant.runtime, status="built", built_by=variant.stage,
                           artifact=variant.key, size_bytes=size, build_seconds=build_seconds,
                           op_count=details.pop("op_count", None), details=details)
    return check_numerics(inputs, variant, record, artifact)


def check_numerics(inputs: BuildInputs, variant: catalog.Variant, record: VariantRecord,
                   artifact: Path) -> VariantRecord:
    """`record` with the numerics of its artifact on the sample inputs; `failed` when its runtime cannot
    run it, `rejected` on non-finite outputs or (for exact variants) outputs that moved too far."""
    reference = inputs.reference
    if not reference.has_samples:
        return record.model_copy(update={"details": {**record.details, "numerics": "not checked: no samples"}})
    runtime = get_runtime(variant.runtime)
    try:
        session = runtime.load(artifact, threads=min(2, os.cpu_count() or 1),
                               options=load_options(variant, inputs.ctx.spec))
        outputs = sample_outputs(session, reference)
    except Exception as error:
        reason = f"built, but {runtime.name} cannot run it: {first_meaningful_line(error)}"
        return record.model_copy(update={"status": "failed", "reason": reason})
    numerics = compare_outputs(reference.sample_outputs or [], outputs)
    record = record.model_copy(update={"numerics": numerics})
    if not _finite(outputs):
        return record.model_copy(update={"status": "rejected",
                                         "reason": "outputs NaN or infinite values on the sample inputs"})
    if variant.exact:
        rejection = rejection_reason(numerics, reference.sample_outputs or [],
                                     float(inputs.ctx.spec.optimize.max_abs_error))
        if rejection is not None:
            return record.model_copy(update={"status": "rejected", "reason": rejection})
    return record


def _finite(outputs: list[np.ndarray]) -> bool:
    return all(bool(np.all(np.isfinite(o))) for o in outputs if np.asarray(o).dtype.kind == "f")


def sample_outputs(session: Session, reference: Reference) -> list[np.ndarray]:
    """A session's outputs on the reference's sample inputs, in the reference's output order; closes it."""
    try:
        feeds = tensors.align(reference.inputs_by_name(), session.inputs)
        outputs = run_in_batches(session, feeds)
    finally:
        session.close()
    order = tensors.match_names([spec.name for spec in session.outputs], [info.name for info in reference.outputs])
    return [outputs[i] for i in order]


def run_in_batches(session: Session, feeds: list[np.ndarray]) -> list[np.ndarray]:
    total = len(feeds[0])
    fixed = session.inputs[0].shape[0] if session.inputs and session.inputs[0].shape else None
    batch = fixed if fixed else min(total, _NUMERICS_BATCH)
    if fixed and total % fixed:
        raise ValueError(f"{total} samples do not split into the model's fixed batch size {batch}")
    chunks = [session.run([f[start:start + batch] for f in feeds]) for start in range(0, total, batch)]
    return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]
