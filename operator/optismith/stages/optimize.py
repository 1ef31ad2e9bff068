"""The optimize stage: the frozen graph through inference folding and offline Grappler (`tf-grappler`),
and, opt-in, the baseline under XLA JIT (`tf-xla`) (optismith.builders.graph; the catalog lists them).
Both are graph rewrites: their outputs must match the baseline's within spec.optimize.maxAbsError."""

from __future__ import annotations

from optismith.builders.stage import BuildStage


class OptimizeStage(BuildStage):
    variant_kind = "graph"
    name = "optimize"
