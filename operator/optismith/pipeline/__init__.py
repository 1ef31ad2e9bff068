"""Runs stages: one at a time (what a Job does) or the whole plan on one machine.

    registry  stage name -> class, loaded lazily, in pipeline order
    plan      the phases, and a spec's steps and Jobs
    runner    one stage against a run directory, or the whole plan locally
    staging   a phase that runs the model: fetch (credentials), execute (none), upload (declared files only)
    execute   the execute step: a confined child, its progress over a pipe, the truth about how it ended
    child     the confined child itself (`python -m optismith.pipeline.child`)
    sandbox   what confines it: bubblewrap, unshare, or a scrubbed environment only
    capture   library output to log files
"""

from optismith.pipeline.plan import PHASES, JobStep, Phase, Plan, StageStep, build_plan
from optismith.pipeline.registry import STAGE_ORDER, get_stage
from optismith.pipeline.runner import RunOutcome, run_plan, run_stage, run_uri_for

__all__ = ["PHASES", "STAGE_ORDER", "JobStep", "Phase", "Plan", "RunOutcome", "StageStep", "build_plan", "get_stage",
           "run_plan", "run_stage", "run_uri_for"]
