"""Runs stages: one at a time (what a Job does) or the whole plan on one machine.

    registry  stage name -> class, loaded lazily, in pipeline order
    plan      the phases, and a spec's steps and Jobs
    runner    one stage against a run directory, or the whole plan in one process
"""

from optismith.pipeline.plan import PHASES, JobStep, Phase, Plan, StageStep, build_plan
from optismith.pipeline.registry import STAGE_ORDER, get_stage
from optismith.pipeline.runner import RunOutcome, run_plan, run_stage, run_uri_for

__all__ = ["PHASES", "STAGE_ORDER", "JobStep", "Phase", "Plan", "RunOutcome", "StageStep", "build_plan", "get_stage",
           "run_plan", "run_stage", "run_uri_for"]
