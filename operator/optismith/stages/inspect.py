"""The inspect stage: fetch the model, recognise it, refuse unsafe graphs, and write the baseline.

Leaves in the run directory (optismith.runs.layout):
    variants/tf-savedmodel/saved_model   the baseline every variant is built from and compared to
    samples/inputs.npz                   seeded random inputs, one array per signature input name
    samples/outputs.npz                  the baseline's outputs on them, one array per output name
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from optismith import catalog, tensors
from optismith.errors import DataError, ModelSignatureError
from optismith.models.analysis import flops_per_sample, saved_model_op_histogram, signature_tensors
from optismith.models.formats import detect_format
from optismith.models.freezing import freeze_saved_model
from optismith.models.normalize import to_saved_model
from optismith.models.policy import enforce, scan_saved_model, scan_source
from optismith.models.source import materialize
from optismith.results import SourceInfo, StageRecord, TensorInfo, VariantRecord
from optismith.runs import layout
from optismith.runs.stage import Stage, StageContext, new_record, tree_size
from optismith.runtimes.tf import SavedModelRuntime
from optismith.spec import ModelSource

STAGE = "inspect"
BASELINE = catalog.get(catalog.BASELINE)
SAMPLE_COUNT = 32
SAMPLE_SEED = 0


def check_declared_names(source: ModelSource, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
    """For models with a signature, names given in spec.model.inputs/outputs must be the signature's."""
    for kind, declared, actual in (("input", [t.name for t in source.inputs], inputs),
                                   ("output", list(source.outputs), outputs)):
        names = [t.name for t in actual]
        unknown = [name for name in declared if tensors.bare_name(name) not in names]
        if unknown:
            raise ModelSignatureError(
                f"signature {source.signature!r} has no {kind} {unknown[0]!r}; its {kind}s are {names}",
                where=f"spec.model.{kind}s", fix=f"use those names, or leave spec.model.{kind}s empty",
            )


class InspectStage(Stage):
    name = STAGE

    def run(self, ctx: StageContext) -> StageRecord:
        spec = ctx.spec
        source = spec.model
        started = time.perf_counter()
        ctx.progress(f"fetching {source.uri}")
        local = materialize(source, spec.storage, spec.limits, ctx.workdir / "source")
        fmt, model_path = detect_format(local, source.format)
        ctx.progress(f"found a {fmt} model; checking every op of every graph before anything loads it")
        allow_ops = spec.security.allow_ops
        scanned = scan_source(fmt, model_path)
        if scanned is not None:
            enforce(scanned, allow_ops, source.uri)

        baseline = ctx.scratch(STAGE) / "saved_model"
        shutil.rmtree(baseline, ignore_errors=True)
        to_saved_model(fmt, model_path, source, baseline)
        if scanned is None or fmt != "savedmodel":
            # What every later stage loads: a Keras model's export, or the SavedModel built from a bare graph.
            scanned = scan_saved_model(baseline)
            enforce(scanned, allow_ops, source.uri)
        inputs, outputs = signature_tensors(baseline, source.signature)
        if fmt in ("savedmodel", "keras"):
            check_declared_names(source, inputs, outputs)

        ctx.progress("analysing the graph")
        histogram = saved_model_op_histogram(baseline, source.signature)
        frozen = freeze_saved_model(baseline, source.signature)
        info = SourceInfo(
            format=fmt, uri=source.uri, signature=source.signature, inputs=inputs, outputs=outputs,
            op_histogram=histogram, op_count=sum(histogram.values()), parameter_count=frozen.parameter_count,
            flops_per_sample=flops_per_sample(frozen.graph_def, frozen.io), size_bytes=tree_size(local),
        )
        size = ctx.publish(BASELINE.key, baseline)
        build_seconds = time.perf_counter() - started
        samples = self._samples(ctx, baseline, inputs)
        variant = VariantRecord(
            name=BASELINE.name, runtime=BASELINE.runtime, status="built", artifact=BASELINE.key,
            size_bytes=size, built_by=STAGE, build_seconds=build_seconds, op_count=info.op_count,
            details={"format": fmt, "source_size_bytes": info.size_bytes},
        )
        message = (f"{fmt} model: {len(inputs)} input(s), {len(outputs)} output(s), {info.op_count} ops, "
                   f"{info.parameter_count} parameters")
        return new_record(ctx, STAGE, message=message, variants=[variant],
                          payload={"source": info.model_dump(), "samples": samples,
                                   "scan": scanned.summary()})

    def _samples(self, ctx: StageContext, baseline: Path, inputs: list[TensorInfo]) -> dict[str, object]:
        """Seeded inputs and the baseline's outputs on them, so later stages check numerics cheaply."""
        try:
            arrays = tensors.synthetic(inputs, SAMPLE_COUNT, SAMPLE_SEED)
        except DataError as error:  # e.g. string inputs: nothing sensible to invent
            for key in (layout.SAMPLE_INPUTS, layout.SAMPLE_OUTPUTS):  # never leave an earlier attempt's samples
                ctx.store.delete(key)
            return {"written": False, "reason": f"cannot make sample inputs: {error.what}"}
        session = SavedModelRuntime.load(baseline, threads=1, options={"signature": ctx.spec.model.signature})
        try:
            results = session.run([arrays[spec.name] for spec in session.inputs])
        finally:
            session.close()
        ctx.write_arrays(layout.SAMPLE_INPUTS, arrays)
        ctx.write_arrays(layout.SAMPLE_OUTPUTS,
                         {spec.name: value for spec, value in zip(session.outputs, results, strict=True)})
        return {"written": True, "count": SAMPLE_COUNT, "seed": SAMPLE_SEED,
                "inputs": layout.SAMPLE_INPUTS, "outputs": layout.SAMPLE_OUTPUTS}
