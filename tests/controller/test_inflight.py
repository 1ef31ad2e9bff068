"""What the operator remembers between its watches: Jobs it just created and the active-Job count, and
the reconcile paths that use them (no Job created twice while the index lags; capacity counted only
when a step is ready to start), and the timer filter that stops reconciling finished runs."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from optismith.controller import handlers
from optismith.controller.inflight import ActiveJobs, RecentCreations, WrittenStatus
from optismith.controller.metrics import OperatorMetrics
from optismith.controller.observe import job_summary
from optismith.controller.settings import OperatorSettings
from optismith.controller.specs import job_labels
from optismith.pipeline.plan import JobStep


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_recent_creation_is_pending_until_seen_or_expired() -> None:
    clock = Clock()
    recent = RecentCreations(ttl=60.0, clock=clock)
    recent.add("m-g1-prepare-a1")
    assert recent.pending("m-g1-prepare-a1") and not recent.pending("other")
    recent.seen(["m-g1-prepare-a1"])
    assert not recent.pending("m-g1-prepare-a1") and len(recent) == 0
    recent.add("n-g1-prepare-a1")
    clock.now += 61.0
    assert not recent.pending("n-g1-prepare-a1")  # long past any watch delay: let a 409 settle it
    recent.add("o-g1-prepare-a1")
    assert len(recent) == 1  # expired names are dropped, so the memory stays bounded


def test_active_jobs_are_recounted_once_per_ttl_and_bumped_in_between() -> None:
    clock = Clock()
    active = ActiveJobs(ttl=1.0, clock=clock)
    counts = iter([(3, 1), (7, 2)])
    calls: list[int] = []

    def count() -> tuple[int, int]:
        calls.append(1)
        return next(counts)

    assert active.current(count) == (3, 1)
    active.created(gpu=True)
    active.created(gpu=False)
    assert active.current(count) == (5, 2) and len(calls) == 1  # never lower than the truth between recounts
    clock.now += 1.0
    assert active.current(count) == (7, 2) and len(calls) == 2


def test_written_status_overlays_a_lagging_observation_until_it_catches_up_or_expires() -> None:
    clock = Clock()
    written = WrittenStatus(ttl=10.0, clock=clock)
    key = ("ml", "m")
    written.remember(key, 1, {"phase": "Running", "observedGeneration": 1})
    written.remember(key, 1, {"stages": ["prepare"]})
    assert written.view(key, 1, {"phase": None, "other": 1}) == {
        "phase": "Running",
        "observedGeneration": 1,
        "stages": ["prepare"],
        "other": 1,
    }
    assert written.view(key, 2, {"phase": None}) == {"phase": None}  # a new generation: the old write is moot
    written.remember(key, 1, {"phase": "Running"})
    caught_up = {"phase": "Running", "observedGeneration": 1, "stages": ["prepare"]}
    assert written.view(key, 1, caught_up) == caught_up and len(written) == 0
    written.remember(key, 1, {"phase": "Succeeded"})
    clock.now += 11.0  # the patch may have been lost: believe the API server again
    assert written.view(key, 1, {"phase": "Running"}) == {"phase": "Running"} and len(written) == 0
    written.remember(key, 1, {"phase": "Running"})
    written.forget(key)
    assert len(written) == 0


@pytest.mark.parametrize(
    ("status", "generation", "in_progress"),
    [
        ({}, 1, True),
        ({"observedGeneration": 1, "phase": "Running"}, 1, True),
        ({"observedGeneration": 1, "phase": "Succeeded"}, 1, False),
        ({"observedGeneration": 1, "phase": "Failed"}, 1, False),
        ({"observedGeneration": 1, "phase": "Succeeded"}, 2, True),  # the spec changed: a new run
    ],
)
def test_the_timer_runs_only_while_a_run_can_still_change(
    status: dict[str, Any], generation: int, in_progress: bool
) -> None:
    assert handlers.is_terminal(status, {"generation": generation}) is not in_progress


def test_the_timer_starts_after_the_create_handler_and_stops_for_finished_runs() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register_handlers(registry, OperatorSettings(reconcile_interval=7.0), OperatorMetrics())
    timer = next(h for h in registry._spawning.get_all_handlers() if h.id == "reconcile")
    assert timer.initial_delay == 7.0 and timer.interval == 7.0
    assert timer.when is not None
    assert timer.when(status={}, meta={"generation": 1}) is True
    assert timer.when(status={"observedGeneration": 1, "phase": "Failed"}, meta={"generation": 1}) is False
    forget = next(h for h in registry._changing.get_all_handlers() if h.id == "forget")
    assert forget.requires_finalizer  # with the timer stopped, this keeps the finalizer that forgets metrics


class FakeClient:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.events: list[str] = []

    async def create_job(self, namespace: str, job: dict[str, Any]) -> bool:
        self.created.append(job["metadata"]["name"])
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        raise AssertionError(f"nothing should be deleted, got {name}")

    async def post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append(reason)


def _memo(settings: OperatorSettings | None = None) -> kopf.Memo:
    return kopf.Memo(
        settings=settings or OperatorSettings(),
        metrics=OperatorMetrics(),
        client=FakeClient(),
        counted_jobs=set(),
        locks={},
        recent_jobs=RecentCreations(),
        active_jobs=ActiveJobs(),
        written_status=WrittenStatus(ttl=10.0),
    )


def _body(name: str = "m") -> dict[str, Any]:
    return {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "generation": 1},
        "spec": {"model": {"uri": "/models/m"}, "output": {"uri": "/runs"}, "calibration": {"synthetic": True}},
    }


def _reconcile(body: dict[str, Any], memo: kopf.Memo, jobs: dict[Any, Any]) -> kopf.Patch:
    patch = kopf.Patch()
    asyncio.run(
        handlers._reconcile(
            body, body["spec"], body["metadata"], {}, "ml", body["metadata"]["name"], patch, memo, jobs, {}
        )
    )
    return patch


def test_a_job_created_moments_ago_is_not_created_again_while_the_index_lags() -> None:
    memo = _memo()
    body = _body()
    _reconcile(body, memo, {})
    _reconcile(body, memo, {})  # e.g. the timer, before the Job's watch event reached the index
    assert memo["client"].created == ["m-g1-prepare-a1"]


def test_a_status_written_moments_ago_is_not_written_again_while_the_watch_lags() -> None:
    memo = _memo()
    body = _body()
    first = _reconcile(body, memo, {})
    assert first.status["phase"] == "Running" and memo["client"].events == ["Running"]
    second = _reconcile(body, memo, {})  # the watch has not brought our status back yet: still {}
    assert not second and memo["client"].events == ["Running"]


def _running_job(name: str, owner: str) -> dict[str, Any]:
    return job_summary(
        {
            "metadata": {
                "name": name,
                "labels": job_labels(owner, 1, JobStep("prepare"), 1),
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "status": {"active": 1, "startTime": "2026-01-01T00:00:01Z"},
        }
    )


def test_free_slots_are_counted_only_when_a_step_is_ready_to_start() -> None:
    memo = _memo()
    jobs = {("ml", "m"): [_running_job("m-g1-prepare-a1", "m")]}
    patch = _reconcile(_body(), memo, jobs)
    assert memo["active_jobs"]._counted_at is None  # its only step is running: nothing to start
    assert patch.status["phase"] == "Running" and not memo["client"].created


def test_the_concurrency_cap_still_holds() -> None:
    memo = _memo(OperatorSettings(max_jobs=1))
    jobs = {("ml", "busy"): [_running_job("busy-g1-prepare-a1", "busy")]}
    patch = _reconcile(_body("m"), memo, jobs)
    assert not memo["client"].created and patch.status["phase"] == "Queued"
