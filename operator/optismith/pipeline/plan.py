"""The plan: which stages run, in which phase, on which target, building which variants.

This is the one definition of the phases. The local runner (`optismith run`) runs the plan's steps in
order; the operator runs each of its Jobs -- one per phase, and per target for the measure phase -- and a
Job runs that phase's stages (`optismith stage <stages...>`). A phase is one process because importing
TensorFlow costs seconds and hundreds of MB; a variant is not.

A phase whose stages run the model is `staged` (optismith.pipeline.staging): a fetch step with credentials
copies what it `reads` into a scratch directory, the stages run there without credentials or network, and
an upload step publishes only the files they declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from optismith import catalog
from optismith.spec import ModelOptimizationSpec


@dataclass(frozen=True)
class Phase:
    name: str
    stages: tuple[str, ...]
    per_target: bool = False  # one Job per target, in parallel; otherwise one CPU Job
    only_if_promoting: bool = False
    staged: bool = False  # its stages run the model: fetch, execute (confined), upload
    reads: tuple[str, ...] = ()  # run-directory prefixes its stages read (what the fetch step copies)
    sources: tuple[str, ...] = ()  # the spec's inputs its stages read: "model", "calibration", "evaluation"


PHASES: tuple[Phase, ...] = (
    Phase("prepare", ("inspect", "freeze", "optimize", "quantize", "convert"), staged=True,
          sources=("model", "calibration")),
    Phase("measure", ("benchmark", "evaluate"), per_target=True, staged=True,
          reads=("stages/", "samples/", "variants/"), sources=("evaluation",)),
    Phase("finalize", ("select", "report")),
    Phase("promote", ("promote",), only_if_promoting=True),
)
PHASE_NAMES: tuple[str, ...] = tuple(p.name for p in PHASES)


def phase(name: str) -> Phase:
    for candidate in PHASES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown phase {name!r}; phases: {', '.join(PHASE_NAMES)}")


@dataclass(frozen=True)
class StageStep:
    stage: str
    phase: str
    target: str | None = None  # set for per-target stages
    variants: tuple[str, ...] = ()  # what the stage builds (build stages only)

    @property
    def label(self) -> str:
        return f"{self.stage}@{self.target}" if self.target else self.stage


@dataclass(frozen=True)
class JobStep:
    """One Job of a run: a phase, for a target when the phase runs per target."""

    phase: str
    target: str | None = None

    @property
    def key(self) -> str:
        return f"{self.phase}-{self.target}" if self.target else self.phase

    @property
    def stages(self) -> tuple[str, ...]:
        return phase(self.phase).stages

    @property
    def staged(self) -> bool:
        return phase(self.phase).staged


@dataclass(frozen=True)
class Plan:
    steps: tuple[StageStep, ...]
    jobs: tuple[tuple[JobStep, ...], ...]  # groups of Jobs: a group's Jobs run in parallel, groups in order

    def phase(self, name: str) -> list[StageStep]:
        return [s for s in self.steps if s.phase == name]

    def variants_built_by(self, stage: str) -> tuple[str, ...]:
        return next((s.variants for s in self.steps if s.stage == stage), ())


def build_plan(spec: ModelOptimizationSpec, targets: list[str] | None = None) -> Plan:
    """Targets default to all of the spec's; the local runner passes only those it can run."""
    chosen = targets if targets is not None else [t.name for t in spec.targets]
    steps: list[StageStep] = []
    jobs: list[tuple[JobStep, ...]] = []
    for entry in PHASES:
        if entry.only_if_promoting and spec.promotion is None:
            continue
        for stage in entry.stages:
            built = tuple(v.name for v in catalog.built_by(stage, spec.variants))
            for target in (chosen if entry.per_target else [None]):
                steps.append(StageStep(stage, entry.name, target, built))
        jobs.append(tuple(JobStep(entry.name, t) for t in chosen) if entry.per_target else (JobStep(entry.name),))
    return Plan(tuple(steps), tuple(jobs))
