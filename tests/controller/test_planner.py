"""The planner's decisions, from observed Jobs and the clock."""

from __future__ import annotations

import datetime as dt

from optismith.controller.planner import Capacity, JobView, decide
from optismith.pipeline.plan import JobStep
from optismith.spec import parse_spec

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
SPEC = parse_spec(
    {
        "model": {"uri": "s3://m/x"},
        "output": {"uri": "s3://r"},
        "calibration": {"synthetic": True},
        "targets": [{"name": "cpu"}, {"name": "gpu", "kind": "gpu"}],
        "execution": {"maxAttempts": 2, "backoff": "10s", "unschedulableTimeout": "60s"},
        "promotion": {"uri": "s3://p/x"},
    }
)


def job(step: JobStep, state: str, attempt: int = 1, generation: int = 1, **kw) -> JobView:
    return JobView(
        name=f"x-g{generation}-{step.key}-a{attempt}",
        generation=generation,
        step=step,
        attempt=attempt,
        state=state,
        **kw,
    )  # type: ignore[arg-type]


PREPARE, CPU, GPU, FINAL, PROMOTE = (
    JobStep("prepare"),
    JobStep("measure", "cpu"),
    JobStep("measure", "gpu"),
    JobStep("finalize"),
    JobStep("promote"),
)


def test_fresh_resource_starts_prepare_only() -> None:
    decision = decide(SPEC, 1, [], NOW)
    assert decision.create == [(PREPARE, 1)]
    assert decision.phase == "Running"


def test_measure_runs_on_all_targets_in_parallel_after_prepare() -> None:
    decision = decide(SPEC, 1, [job(PREPARE, "succeeded")], NOW)
    assert decision.create == [(CPU, 1), (GPU, 1)]


def test_existing_jobs_are_never_created_again() -> None:
    decision = decide(SPEC, 1, [job(PREPARE, "succeeded"), job(CPU, "running"), job(GPU, "pending")], NOW)
    assert decision.create == []


def test_whole_plan_succeeds() -> None:
    jobs = [job(s, "succeeded") for s in (PREPARE, CPU, GPU, FINAL, PROMOTE)]
    decision = decide(SPEC, 1, jobs, NOW)
    assert decision.phase == "Succeeded" and decision.create == []


def test_failed_job_is_retried_after_backoff_then_fails_the_run() -> None:
    failed = job(
        PREPARE, "failed", finished_at=NOW - dt.timedelta(seconds=5), message="S3 unreachable", reason="StorageError"
    )
    waiting = decide(SPEC, 1, [failed], NOW)
    assert waiting.create == [] and waiting.phase == "Retrying"
    due = decide(SPEC, 1, [failed], NOW + dt.timedelta(seconds=6))
    assert due.create == [(PREPARE, 2)]
    final = decide(
        SPEC, 1, [failed, job(PREPARE, "failed", attempt=2, message="S3 unreachable", reason="StorageError")], NOW
    )
    assert final.phase == "Failed" and final.reason == "StorageError"
    assert "after 2 attempt(s)" in final.message and "S3 unreachable" in final.message


def test_spec_change_supersedes_old_jobs() -> None:
    decision = decide(SPEC, 2, [job(PREPARE, "succeeded"), job(CPU, "running")], NOW)
    assert sorted(decision.delete) == ["x-g1-measure-cpu-a1", "x-g1-prepare-a1"]
    assert decision.create == [(PREPARE, 1)]


def test_unschedulable_gpu_job_fails_the_run_after_the_timeout() -> None:
    base = [job(PREPARE, "succeeded"), job(CPU, "succeeded")]
    pending = job(
        GPU,
        "unschedulable",
        unschedulable_since=NOW - dt.timedelta(seconds=30),
        message="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    )
    early = decide(SPEC, 1, [*base, pending], NOW)
    assert early.phase == "Running" and "unschedulable" in early.message
    late = decide(SPEC, 1, [*base, pending], NOW + dt.timedelta(seconds=31))
    assert late.phase == "Failed" and late.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in late.message and late.delete == [pending.name]


def test_concurrency_limits_queue_steps() -> None:
    decision = decide(SPEC, 1, [], NOW, Capacity(jobs=0))
    assert decision.create == [] and decision.phase == "Queued"
    gpu_limited = decide(SPEC, 1, [job(PREPARE, "succeeded")], NOW, Capacity(jobs=5, gpu_jobs=0))
    assert gpu_limited.create == [(CPU, 1)]
    assert any(s.state == "queued" and s.step == GPU for s in gpu_limited.steps)
