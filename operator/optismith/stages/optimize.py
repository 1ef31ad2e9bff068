"""The optimize stage: the frozen graph through inference folding and offline Grappler (`tf-grappler`),
and, opt-in, the baseline under XLA JIT (`tf-xla`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from optismith.models.freezing import freeze_saved_model, read_graph, write_graph
from optismith.models.graphio import IO_FILE, GraphIO
from optismith.models.grappler import fold_for_inference, grappler_name, op_counts, run_grappler
from optismith.results import StageRecord, VariantRecord
from optismith.runtimes.tf import GraphDefRuntime, XlaRuntime
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.building import first_meaningful_line
from optismith.stages.numerics_gate import gate_variant
from optismith.stages.variants import CATALOG, variant_key

STAGE = "optimize"
GRAPPLER = "tf-grappler"
XLA = "tf-xla"
FROZEN = "tf-frozen"


def _failed(name: str, error: BaseException, started: float) -> VariantRecord:
    return VariantRecord(name=name, runtime=CATALOG[name].runtime, status="failed", built_by=STAGE,
                         reason=first_meaningful_line(error), build_seconds=time.perf_counter() - started)


def frozen_source(ctx: StageContext) -> tuple[Any, GraphIO, str]:
    """The frozen graph the freeze stage wrote, or a fresh freeze of the baseline when it wrote none."""
    key = variant_key(FROZEN)
    if ctx.store.exists(key) and ctx.store.exists(f"variants/{FROZEN}/{IO_FILE}"):
        ctx.fetch(f"variants/{FROZEN}/{IO_FILE}")
        graph_def, io = read_graph(ctx.fetch(key))
        return graph_def, io, key
    frozen = freeze_saved_model(ctx.fetch(variant_key("tf-savedmodel")), ctx.spec.model.signature)
    return frozen.graph_def, frozen.io, "the baseline, frozen by this stage"


@register_stage
class OptimizeStage(Stage):
    name = STAGE
    requires = ("inspect",)
    description = "Offline Grappler passes over the frozen graph (tf-grappler); XLA JIT (tf-xla, opt-in)."

    def run(self, ctx: StageContext) -> StageRecord:
        records: list[VariantRecord] = []
        if GRAPPLER in ctx.spec.variants:
            records.append(self._grappler(ctx))
        if XLA in ctx.spec.variants:
            records.append(self._xla(ctx))
        if not records:
            return new_record(ctx, STAGE, message=f"neither {GRAPPLER} nor {XLA} requested")
        summary = ", ".join(f"{r.name} {r.status}" for r in records)
        return new_record(ctx, STAGE, message=summary, variants=records)

    def _grappler(self, ctx: StageContext) -> VariantRecord:
        passes = list(ctx.spec.optimize.passes)
        ctx.progress(f"running Grappler: {', '.join(passes)}")
        started = time.perf_counter()
        try:
            graph_def, io, source = frozen_source(ctx)
            folded = fold_for_inference(graph_def, io)
            optimized = run_grappler(folded.graph_def, io, passes)
            directory = ctx.scratch(GRAPPLER)
            path = write_graph(optimized, io, directory, CATALOG[GRAPPLER].artifact)
        except Exception as error:
            return _failed(GRAPPLER, error, started)
        build_seconds = time.perf_counter() - started
        size = ctx.publish(variant_key(GRAPPLER), path)
        ctx.publish(f"variants/{GRAPPLER}/{IO_FILE}", directory / IO_FILE)
        before, after = op_counts(graph_def), op_counts(optimized)
        details = {
            "source": source,
            "passes": passes,
            "grappler_optimizers": [grappler_name(p) for p in passes],
            "ops_before": sum(before.values()),
            "ops_after": sum(after.values()),
            "op_histogram": dict(after.most_common()),
            "optimize_for_inference": folded.summary(),
        }
        record = VariantRecord(name=GRAPPLER, runtime=CATALOG[GRAPPLER].runtime, status="built",
                               artifact=variant_key(GRAPPLER), size_bytes=size, built_by=STAGE,
                               build_seconds=build_seconds, op_count=sum(after.values()), details=details)
        return gate_variant(ctx, record, GraphDefRuntime, path)

    def _xla(self, ctx: StageContext) -> VariantRecord:
        ctx.progress("preparing the XLA variant")
        started = time.perf_counter()
        try:
            baseline: Path = ctx.fetch(variant_key("tf-savedmodel"))
            size = ctx.publish(variant_key(XLA), baseline)
        except Exception as error:
            return _failed(XLA, error, started)
        signature = ctx.spec.model.signature
        record = VariantRecord(
            name=XLA, runtime=CATALOG[XLA].runtime, status="built", artifact=variant_key(XLA), size_bytes=size,
            built_by=STAGE, build_seconds=time.perf_counter() - started,
            details={"signature": signature, "jit_compile": True,
                     "note": "the baseline SavedModel; XLA compiles its serving function when loaded"},
        )
        return gate_variant(ctx, record, XlaRuntime, ctx.fetch(variant_key(XLA)), {"signature": signature})
