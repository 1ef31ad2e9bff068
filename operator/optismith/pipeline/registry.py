"""The stage registry, as data: every stage's name, in pipeline order, mapped to its class's module path.

A stage is imported only when it is asked for (optismith.lazy), so the registry imports no stage and no
stage imports the registry; importing this module costs nothing.
"""

from __future__ import annotations

from optismith import lazy
from optismith.errors import StageError
from optismith.runs.stage import Stage

STAGES: dict[str, str] = {
    "inspect": "optismith.stages.inspect:InspectStage",
    "freeze": "optismith.stages.freeze:FreezeStage",
    "optimize": "optismith.stages.optimize:OptimizeStage",
    "quantize": "optismith.stages.quantize:QuantizeStage",
    "convert": "optismith.stages.convert:ConvertStage",
    "benchmark": "optismith.stages.benchmark:BenchmarkStage",
    "evaluate": "optismith.stages.evaluate:EvaluateStage",
    "select": "optismith.stages.select:SelectStage",
    "report": "optismith.stages.report:ReportStage",
    "promote": "optismith.stages.promote:PromoteStage",
}
STAGE_ORDER: tuple[str, ...] = tuple(STAGES)


def get_stage(name: str) -> type[Stage]:
    if name not in STAGES:
        raise StageError(f"unknown stage {name!r}", where="stage name", fix=f"use one of: {', '.join(STAGES)}")
    stage: type[Stage] = lazy.load(STAGES[name])
    return stage
