"""Runs stages: one at a time (what a Job does) or the whole plan on one machine."""

from optismith.pipeline.plan import PHASES, Plan, StageStep, build_plan
from optismith.pipeline.runner import RunOutcome, run_plan, run_stage

__all__ = ["PHASES", "Plan", "RunOutcome", "StageStep", "build_plan", "run_plan", "run_stage"]
