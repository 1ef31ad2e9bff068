"""The stage registry: inspect, freeze, optimize, quantize, convert, benchmark, evaluate, select, report."""

from optismith.stages.base import STAGE_ORDER, Stage, StageContext, get_stage, register_stage

__all__ = ["STAGE_ORDER", "Stage", "StageContext", "get_stage", "register_stage"]
