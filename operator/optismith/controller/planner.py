"""Level-based planning: from what exists now (the resource, its Jobs, the clock), decide what to do.

Pure and deterministic, so every branch is unit-tested without a cluster, and a restarted operator
reaches the same decisions from the same observed state (no Job is ever created twice: names are
deterministic and creation is only decided for steps that have no Job for that attempt yet).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from optismith.controller import reasons
from optismith.errors import StageError
from optismith.pipeline.plan import JobStep, build_plan
from optismith.spec import ModelOptimizationSpec, seconds

JobState = Literal["pending", "running", "succeeded", "failed", "unschedulable"]
RunPhase = Literal["Queued", "Running", "Retrying", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobView:
    """What the operator knows about one of its Jobs (from the Job and its Pod)."""

    name: str
    generation: int
    step: JobStep
    attempt: int
    state: JobState
    reason: str = ""
    message: str = ""
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    unschedulable_since: dt.datetime | None = None
    uses_gpu: bool = False


@dataclass(frozen=True)
class StepStatus:
    step: JobStep
    state: Literal["waiting", "queued", "pending", "running", "succeeded", "retrying", "failed"]
    attempts: int
    job: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    message: str = ""
    reason: str = ""


@dataclass
class Decision:
    phase: RunPhase
    reason: str
    message: str
    create: list[tuple[JobStep, int]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    steps: list[StepStatus] = field(default_factory=list)


@dataclass(frozen=True)
class Capacity:
    """Free Job slots, counted across all resources by the caller."""

    jobs: int = 1_000_000
    gpu_jobs: int = 1_000_000


def _target_is_gpu(spec: ModelOptimizationSpec, step: JobStep) -> bool:
    return any(t.name == step.target and t.kind == "gpu" for t in spec.targets)


def decide(
    spec: ModelOptimizationSpec,
    generation: int,
    jobs: list[JobView],
    now: dt.datetime,
    capacity: Capacity = Capacity(),
) -> Decision:
    stale = [j.name for j in jobs if j.generation != generation]
    current = [j for j in jobs if j.generation == generation]
    max_attempts = spec.execution.max_attempts
    backoff = seconds(spec.execution.backoff)
    unschedulable_timeout = seconds(spec.execution.unschedulable_timeout)

    statuses: list[StepStatus] = []
    create: list[tuple[JobStep, int]] = []
    delete = list(stale)
    failure: StepStatus | None = None
    free_jobs, free_gpu = capacity.jobs, capacity.gpu_jobs
    queued = False
    blocked = False  # an earlier group has not finished

    for group in build_plan(spec).jobs:
        group_done = True
        for step in group:
            attempts = sorted((j for j in current if j.step == step), key=lambda j: j.attempt)
            latest = attempts[-1] if attempts else None
            if blocked:
                statuses.append(StepStatus(step, "waiting", len(attempts)))
                group_done = False
                continue
            if latest is None:
                group_done = False
                gpu = _target_is_gpu(spec, step)
                if free_jobs > 0 and (not gpu or free_gpu > 0):
                    free_jobs -= 1
                    free_gpu -= 1 if gpu else 0
                    create.append((step, 1))
                    statuses.append(StepStatus(step, "pending", 1, message="creating Job"))
                else:
                    queued = True
                    statuses.append(StepStatus(step, "queued", 0, message="waiting for a free "
                                               f"{'GPU ' if gpu else ''}Job slot (concurrency limit)"))
                continue
            base = {"attempts": latest.attempt, "job": latest.name, "started_at": latest.started_at,
                    "finished_at": latest.finished_at, "message": latest.message, "reason": latest.reason}
            if latest.state == "succeeded":
                statuses.append(StepStatus(step, "succeeded", **base))  # type: ignore[arg-type]
                continue
            group_done = False
            if latest.state in ("pending", "running"):
                statuses.append(StepStatus(step, latest.state, **base))  # type: ignore[arg-type]
                continue
            if latest.state == "unschedulable":
                since = latest.unschedulable_since or latest.created_at or now
                waited = (now - since).total_seconds()
                if waited < unschedulable_timeout:
                    statuses.append(StepStatus(step, "pending", **{**base, "reason": reasons.UNSCHEDULABLE}))  # type: ignore[arg-type]
                    continue
                # Waiting longer will not help: report it and free the cluster of the pending pod.
                delete.append(latest.name)
                message = (f"Job {latest.name} could not be scheduled for {waited:.0f}s: {latest.message}".strip()
                           + " — check the target's nodeSelector, tolerations and GPU capacity")
                failure = StepStatus(step, "failed", **{**base, "reason": reasons.UNSCHEDULABLE, "message": message})  # type: ignore[arg-type]
                statuses.append(failure)
                continue
            # failed
            if latest.attempt < max_attempts:
                finished = latest.finished_at or latest.created_at or now
                delay = backoff * (2 ** (latest.attempt - 1))
                due = finished + dt.timedelta(seconds=delay)
                if now >= due:
                    create.append((step, latest.attempt + 1))
                    statuses.append(StepStatus(step, "retrying", **{**base, "attempts": latest.attempt + 1}))  # type: ignore[arg-type]
                else:
                    statuses.append(StepStatus(step, "retrying", **base))  # type: ignore[arg-type]
                continue
            failure = StepStatus(step, "failed", **base)  # type: ignore[arg-type]
            statuses.append(failure)
        if not group_done:
            blocked = True

    steps_total = len(statuses)
    done = sum(1 for s in statuses if s.state == "succeeded")
    if failure is not None:
        create = []  # a failed run starts nothing new; in-flight siblings finish or are deleted on update
        what = failure.step.key
        reason = failure.reason or reasons.JOB_FAILED
        message = (f"{what} failed after {failure.attempts} attempt(s): {failure.message}".strip()
                   if failure.reason != reasons.UNSCHEDULABLE else failure.message)
        return Decision("Failed", reason if reason != StageError.reason else reasons.JOB_FAILED, message, [], delete,
                        statuses)
    if done == steps_total:
        return Decision("Succeeded", reasons.COMPLETED, f"all {steps_total} steps succeeded", [], delete, statuses)
    retrying = [s for s in statuses if s.state == "retrying"]
    if retrying and not create:
        s = retrying[0]
        return Decision("Retrying", reasons.BACKOFF, f"{s.step.key} attempt {s.attempts} failed ({s.message[:200]}); "
                        f"retrying after backoff", create, delete, statuses)
    if queued and not create and not any(s.state in ("pending", "running") for s in statuses):
        return Decision("Queued", reasons.QUEUED, "waiting for a free Job slot (operator concurrency limit)", create,
                        delete, statuses)
    running = [s.step.key for s in statuses if s.state in ("pending", "running", "retrying")]
    message = f"{done}/{steps_total} steps done; running: {', '.join(running) or '-'}"
    if any(s.reason == reasons.UNSCHEDULABLE for s in statuses):
        message += " (a Job is unschedulable)"
    return Decision("Running", reasons.RUNNING, message, create, delete, statuses)
