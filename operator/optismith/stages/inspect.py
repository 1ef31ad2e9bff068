"""The inspect stage: fetch the model, recognise it, refuse unsafe graphs, and write the baseline.

Leaves in the run directory:
    variants/tf-savedmodel/saved_model   the baseline every variant is built from and compared to
    samples/inputs.npz                   seeded random inputs, one array per signature input name
    samples/outputs.npz                  the baseline's outputs on them, one array per output name
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from optismith.errors import ModelSignatureError
from optismith.models.analysis import flops_per_sample, saved_model_op_histogram, signature_tensors
from optismith.models.formats import detect_format
from optismith.models.freezing import freeze_saved_model
from optismith.models.normalize import to_saved_model
from optismith.models.samples import SAMPLE_COUNT, make_samples
from optismith.models.security import check_findings, scan_model, scan_saved_model
from optismith.models.source import materialize
from optismith.results import SourceInfo, StageRecord, TensorInfo, VariantRecord
from optismith.runtimes.tf import SavedModelRuntime
from optismith.spec import ModelSource
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.variants import CATALOG, variant_key

STAGE = "inspect"
BASELINE = "tf-savedmodel"
SAMPLE_INPUTS_KEY = "samples/inputs.npz"
SAMPLE_OUTPUTS_KEY = "samples/outputs.npz"
SAMPLE_SEED = 0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _bare(name: str) -> str:
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def check_declared_names(source: ModelSource, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
    """For models with a signature, names given in spec.model.inputs/outputs must be the signature's."""
    for kind, declared, actual in (("input", [t.name for t in source.inputs], inputs),
                                   ("output", list(source.outputs), outputs)):
        names = [t.name for t in actual]
        unknown = [name for name in declared if _bare(name) not in names]
        if unknown:
            raise ModelSignatureError(
                f"signature {source.signature!r} has no {kind} {unknown[0]!r}; its {kind}s are {names}",
                where=f"spec.model.{kind}s", fix=f"use those names, or leave spec.model.{kind}s empty",
            )


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


@register_stage
class InspectStage(Stage):
    name = STAGE
    description = "Fetch and recognise the model, refuse unsafe graphs, write the baseline SavedModel."

    def run(self, ctx: StageContext) -> StageRecord:
        spec = ctx.spec
        source = spec.model
        started = time.perf_counter()
        ctx.progress(f"fetching {source.uri}")
        local = materialize(source, spec.storage, spec.limits, ctx.workdir / "source")
        fmt, model_path = detect_format(local, source.format)
        ctx.progress(f"found a {fmt} model; scanning its serving graph")
        findings = scan_model(fmt, model_path, source)
        if findings is not None:
            check_findings(findings, spec.security.allow_ops, source.uri)

        baseline = ctx.scratch(STAGE) / "saved_model"
        shutil.rmtree(baseline, ignore_errors=True)
        to_saved_model(fmt, model_path, source, baseline)
        if findings is None:
            check_findings(scan_saved_model(baseline, source.signature), spec.security.allow_ops, source.uri)
        inputs, outputs = signature_tensors(baseline, source.signature)
        if fmt in ("savedmodel", "keras"):
            check_declared_names(source, inputs, outputs)

        ctx.progress("analysing the graph")
        histogram = saved_model_op_histogram(baseline, source.signature)
        frozen = freeze_saved_model(baseline, source.signature)
        info = SourceInfo(
            format=fmt, uri=source.uri, signature=source.signature, inputs=inputs, outputs=outputs,
            op_histogram=histogram, op_count=sum(histogram.values()), parameter_count=frozen.parameter_count,
            flops_per_sample=flops_per_sample(frozen.graph_def, frozen.io), size_bytes=_size(local),
        )
        size = ctx.publish(variant_key(BASELINE), baseline)
        build_seconds = time.perf_counter() - started
        samples = self._samples(ctx, baseline, inputs)
        variant = VariantRecord(
            name=BASELINE, runtime=CATALOG[BASELINE].runtime, status="built", artifact=variant_key(BASELINE),
            size_bytes=size, built_by=STAGE, build_seconds=build_seconds, op_count=info.op_count,
            details={"format": fmt, "source_size_bytes": info.size_bytes},
        )
        message = (f"{fmt} model: {len(inputs)} input(s), {len(outputs)} output(s), {info.op_count} ops, "
                   f"{info.parameter_count} parameters")
        return new_record(ctx, STAGE, message=message, variants=[variant],
                          payload={"source": info.model_dump(), "samples": samples})

    def _samples(self, ctx: StageContext, baseline: Path, inputs: list[TensorInfo]) -> dict[str, object]:
        """Seeded inputs and the baseline's outputs on them, so later stages check numerics cheaply."""
        try:
            arrays = make_samples(inputs, SAMPLE_COUNT, SAMPLE_SEED)
        except TypeError as error:  # e.g. string inputs: nothing sensible to invent
            for key in (SAMPLE_INPUTS_KEY, SAMPLE_OUTPUTS_KEY):  # never leave an earlier attempt's samples
                ctx.store.delete(key)
            return {"written": False, "reason": f"cannot make sample inputs: {error}"}
        session = SavedModelRuntime.load(baseline, threads=1, options={"signature": ctx.spec.model.signature})
        try:
            results = session.run([arrays[spec.name] for spec in session.inputs])
        finally:
            session.close()
        ctx.store.write_bytes(SAMPLE_INPUTS_KEY, _npz(arrays))
        ctx.store.write_bytes(SAMPLE_OUTPUTS_KEY, _npz(
            {spec.name: value for spec, value in zip(session.outputs, results, strict=True)}))
        return {"written": True, "count": SAMPLE_COUNT, "seed": SAMPLE_SEED,
                "inputs": SAMPLE_INPUTS_KEY, "outputs": SAMPLE_OUTPUTS_KEY}
