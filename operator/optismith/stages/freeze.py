"""The freeze stage: the baseline's serving signature as one GraphDef with variables as constants.

The frozen graph (`variants/tf-frozen/frozen.pb` + `io.json`) is what the optimize and convert stages
start from, so it is written whenever freezing works; it is recorded as the `tf-frozen` variant (and
so benchmarked) only when the spec asks for it.
"""

from __future__ import annotations

import time

from optismith import catalog
from optismith.builders.base import BuildInputs, check_numerics, first_meaningful_line
from optismith.builders.reference import NO_CALIBRATION, load_reference
from optismith.models.freezing import freeze_saved_model, write_graph
from optismith.models.grappler import op_counts
from optismith.results import StageRecord, VariantRecord
from optismith.runs import layout
from optismith.runs.stage import Stage, StageContext, new_record

STAGE = "freeze"
FROZEN = catalog.get("tf-frozen")


def source_op_count(ctx: StageContext) -> int | None:
    count = ctx.record("inspect").payload.get("source", {}).get("op_count")
    return int(count) if count is not None else None


class FreezeStage(Stage):
    name = STAGE
    requires = ("inspect",)

    def run(self, ctx: StageContext) -> StageRecord:
        requested = FROZEN.name in ctx.spec.variants
        ctx.progress("freezing the serving signature")
        baseline = ctx.fetch(layout.variant_artifact(catalog.BASELINE))
        started = time.perf_counter()
        try:
            frozen = freeze_saved_model(baseline, ctx.spec.model.signature)
        except Exception as error:
            reason = first_meaningful_line(error)
            failed = VariantRecord(name=FROZEN.name, runtime=FROZEN.runtime, status="failed", reason=reason,
                                   built_by=STAGE, build_seconds=time.perf_counter() - started)
            return new_record(ctx, STAGE, message=f"freezing failed: {reason}",
                              variants=[failed] if requested else [])
        directory = ctx.scratch(FROZEN.name)
        path = write_graph(frozen.graph_def, frozen.io, directory, FROZEN.artifact)
        build_seconds = time.perf_counter() - started
        size = ctx.publish(FROZEN.key, path)
        ctx.publish(layout.graph_io(FROZEN.name), directory / layout.GRAPH_IO_FILE)
        after = op_counts(frozen.graph_def)
        before = source_op_count(ctx)
        details = {"ops_before": before, "ops_after": sum(after.values()), "op_histogram": dict(after.most_common()),
                   "io": frozen.io.to_json()}
        message = f"frozen: {before} -> {sum(after.values())} ops"
        if not requested:
            return new_record(ctx, STAGE, message=message + f" ({FROZEN.name} not requested: not benchmarked)",
                              payload={"frozen": details})
        record = VariantRecord(
            name=FROZEN.name, runtime=FROZEN.runtime, status="built", artifact=FROZEN.key, size_bytes=size,
            built_by=STAGE, build_seconds=build_seconds, op_count=sum(after.values()), details=details,
        )
        record = check_numerics(BuildInputs(ctx, load_reference(ctx), NO_CALIBRATION), FROZEN, record, path)
        return new_record(ctx, STAGE, message=message, variants=[record])
