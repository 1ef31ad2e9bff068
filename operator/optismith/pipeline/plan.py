"""The plan: which stages run, in which phase, on which target.

Phases are what the operator turns into Jobs (one process per phase and target, because importing
TensorFlow costs seconds and hundreds of MB): prepare on CPU, measure on every target in parallel,
then finalize.
"""

from __future__ import annotations

from dataclasses import dataclass

from optismith.spec import ModelOptimizationSpec

PHASES: dict[str, tuple[str, ...]] = {
    "prepare": ("inspect", "freeze", "optimize", "quantize", "convert"),
    "measure": ("benchmark", "evaluate"),
    "finalize": ("select", "report"),
    "promote": ("promote",),
}


@dataclass(frozen=True)
class StageStep:
    stage: str
    phase: str
    target: str | None = None  # set for per-target stages


@dataclass(frozen=True)
class Plan:
    steps: tuple[StageStep, ...]

    def phase(self, name: str) -> list[StageStep]:
        return [s for s in self.steps if s.phase == name]


def build_plan(spec: ModelOptimizationSpec, targets: list[str] | None = None) -> Plan:
    """Targets default to all of the spec's; the local runner passes only those it can run."""
    chosen = targets if targets is not None else [t.name for t in spec.targets]
    steps: list[StageStep] = []
    for phase, stages in PHASES.items():
        if phase == "promote" and spec.promotion is None:
            continue
        for stage in stages:
            if phase == "measure":
                steps.extend(StageStep(stage, phase, target) for target in chosen)
            else:
                steps.append(StageStep(stage, phase))
    return Plan(tuple(steps))
