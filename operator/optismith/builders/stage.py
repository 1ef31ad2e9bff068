"""The stage that builds variants from the catalog: every variant the spec asks for whose catalog entry
names this stage, each with its entry's builder (optismith.builders.base.build_variant)."""

from __future__ import annotations

from typing import ClassVar

from optismith import catalog
from optismith.builders.base import BuildInputs, build_variant
from optismith.builders.reference import calibration_for, load_reference
from optismith.results import StageRecord
from optismith.runs.stage import Stage, StageContext, new_record


class BuildStage(Stage):
    """Subclasses set `name`, what to call their variants in messages, and `requires`; the catalog says
    what they build."""

    requires = ("inspect",)
    variant_kind: ClassVar[str] = ""

    def run(self, ctx: StageContext) -> StageRecord:
        wanted = catalog.built_by(self.name, ctx.spec.variants)
        if not wanted:
            return new_record(ctx, self.name, message=f"no {self.variant_kind} variants requested")
        reference = load_reference(ctx)
        inputs = BuildInputs(ctx, reference, calibration_for(ctx, wanted, reference))
        records = [build_variant(inputs, variant) for variant in wanted]
        built = sum(r.status == "built" for r in records)
        message = f"built {built} of {len(records)} {self.variant_kind} variants"
        skipped = [r.name for r in records if r.status == "skipped"]
        if skipped:
            message += f" ({', '.join(skipped)} skipped)"
        if inputs.calibration.source == "synthetic":
            message += " (int8 calibrated on synthetic data)"
        return new_record(ctx, self.name, message=message, variants=records,
                          payload={"calibration": inputs.calibration.payload()})
