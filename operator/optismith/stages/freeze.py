"""The freeze stage: the baseline's serving signature as one GraphDef with variables as constants.

The frozen graph (`variants/tf-frozen/frozen.pb` + `io.json`) is what the optimize and convert stages
start from, so it is written whenever freezing works; it is recorded as the `tf-frozen` variant (and
so benchmarked) only when the spec asks for it.
"""

from __future__ import annotations

import time

from optismith.models.freezing import freeze_saved_model, write_graph
from optismith.models.graphio import IO_FILE
from optismith.models.grappler import op_counts
from optismith.results import StageRecord, VariantRecord
from optismith.runtimes.tf import GraphDefRuntime
from optismith.stages.base import Stage, StageContext, new_record, register_stage
from optismith.stages.building import first_meaningful_line
from optismith.stages.numerics_gate import gate_variant
from optismith.stages.variants import CATALOG, variant_key

STAGE = "freeze"
VARIANT = "tf-frozen"
FROZEN_FILE = CATALOG[VARIANT].artifact


def source_op_count(ctx: StageContext) -> int | None:
    source = ctx.record("inspect").payload.get("source", {})
    count = source.get("op_count")
    return int(count) if count is not None else None


@register_stage
class FreezeStage(Stage):
    name = STAGE
    requires = ("inspect",)
    description = "Fold the baseline's variables into constants: one GraphDef per serving signature."

    def run(self, ctx: StageContext) -> StageRecord:
        requested = VARIANT in ctx.spec.variants
        ctx.progress("freezing the serving signature")
        baseline = ctx.fetch(variant_key("tf-savedmodel"))
        started = time.perf_counter()
        try:
            frozen = freeze_saved_model(baseline, ctx.spec.model.signature)
        except Exception as error:
            reason = first_meaningful_line(error)
            failed = VariantRecord(name=VARIANT, runtime=CATALOG[VARIANT].runtime, status="failed",
                                   reason=reason, built_by=STAGE, build_seconds=time.perf_counter() - started)
            return new_record(ctx, STAGE, message=f"freezing failed: {reason}",
                              variants=[failed] if requested else [])
        directory = ctx.scratch(VARIANT)
        path = write_graph(frozen.graph_def, frozen.io, directory, FROZEN_FILE)
        build_seconds = time.perf_counter() - started
        size = ctx.publish(variant_key(VARIANT), path)
        ctx.publish(f"variants/{VARIANT}/{IO_FILE}", directory / IO_FILE)
        after = op_counts(frozen.graph_def)
        before = source_op_count(ctx)
        details = {"ops_before": before, "ops_after": sum(after.values()), "op_histogram": dict(after.most_common()),
                   "io": frozen.io.to_json()}
        message = f"frozen: {before} -> {sum(after.values())} ops"
        if not requested:
            return new_record(ctx, STAGE, message=message + f" ({VARIANT} not requested: not benchmarked)",
                              payload={"frozen": details})
        record = VariantRecord(
            name=VARIANT, runtime=CATALOG[VARIANT].runtime, status="built", artifact=variant_key(VARIANT),
            size_bytes=size, built_by=STAGE, build_seconds=build_seconds, op_count=sum(after.values()),
            details=details,
        )
        record = gate_variant(ctx, record, GraphDefRuntime, path)
        return new_record(ctx, STAGE, message=message, variants=[record])
