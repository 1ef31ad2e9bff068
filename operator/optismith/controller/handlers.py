"""kopf handlers: thin. They gather what is observed, ask the planner what to do, do it, and report.

Jobs and Pods are watched into in-memory indexes, so a reconcile costs no API calls unless something
must change; a periodic timer makes reconciliation level-based (restarts, missed events, backoffs).
`register_handlers` puts them into a registry with the settings built at startup (optismith.controller.main).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from optismith import API_GROUP, API_VERSION
from optismith.controller import reasons
from optismith.controller.client import KubeClient
from optismith.controller.crd import PLURAL
from optismith.controller.credentials import (
    credentials_secret,
    credentials_secret_name,
    mint_credentials,
    with_credentials,
)
from optismith.controller.inflight import ActiveJobs, RecentCreations, WrittenStatus
from optismith.controller.metrics import OperatorMetrics
from optismith.controller.observe import job_summary, job_view, pod_summary
from optismith.controller.planner import Capacity, Decision, decide
from optismith.controller.settings import OperatorSettings
from optismith.controller.specs import LABEL_MANAGED_BY, MANAGER, build_job, run_uri
from optismith.controller.status import build_status, degraded, invalid_spec_status
from optismith.controller.tenancy import image_refusal
from optismith.errors import OptismithError, SpecError
from optismith.results import PromotionOutcome, RunResults, StageRecord
from optismith.runs import layout
from optismith.spec import ModelOptimizationSpec, parse_spec
from optismith.storage import open_storage

log = logging.getLogger("optismith.operator")


def _owner(meta: dict[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ModelOptimization":
            return str(ref.get("name"))
    return None


def _active_jobs(jobs_index: kopf.Index[Any, Any]) -> tuple[int, int]:
    total = gpu = 0
    for key in list(jobs_index):
        for job in jobs_index.get(key, []):
            if not job["succeeded"] and not job["failed"] and not job["deleting"]:
                total += 1
                gpu += 1 if job["gpu"] else 0
    return total, gpu


def read_outcome(spec: ModelOptimizationSpec, uri: str) -> tuple[RunResults, PromotionOutcome | None]:
    """The run's results.json and, when promotion is configured, what the promote stage did."""
    store = open_storage(uri, spec.storage)
    results = RunResults.model_validate_json(store.read_bytes(layout.RESULTS))
    promotion = None
    if spec.promotion is not None and store.exists(layout.stage_record("promote")):
        record = StageRecord.model_validate_json(store.read_bytes(layout.stage_record("promote")))
        promotion = PromotionOutcome.model_validate(record.payload)
    return results, promotion


async def _event(client: KubeClient, body: dict[str, Any], decision: Decision, previous_phase: str | None,
                 status: dict[str, Any]) -> None:
    """One Kubernetes Event per transition of the run's phase: Warning for a failure and for a completed run
    that is not usable (no variant passed, or the winner was not promoted), Normal otherwise."""
    if decision.phase == previous_phase:
        return
    unusable = degraded(status)
    if decision.phase == "Failed":
        await client.post_event(body, "Warning", decision.reason, decision.message)
    elif unusable is not None:
        await client.post_event(body, "Warning", *unusable)
    else:
        await client.post_event(body, "Normal", decision.phase, decision.message)


def is_terminal(status: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """The run of the current generation has ended; only a spec change (the update handler) restarts it."""
    generation = int(meta.get("generation") or 1)
    return status.get("observedGeneration") == generation and status.get("phase") in ("Succeeded", "Failed")


def _target_is_gpu(spec: ModelOptimizationSpec, target: str | None) -> bool:
    return any(t.name == target and t.kind == "gpu" for t in spec.targets)


async def reconcile(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, namespace: str, name: str,
    patch: kopf.Patch, memo: kopf.Memo, jobs_by_owner: kopf.Index[Any, Any], pods_by_job: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    locks: dict[tuple[str, str], asyncio.Lock] = memo["locks"]
    lock = locks.setdefault((namespace, name), asyncio.Lock())
    metrics: OperatorMetrics = memo["metrics"]
    async with lock:
        try:
            await _reconcile(body, dict(spec), dict(meta), dict(status), namespace, name, patch, memo,
                             jobs_by_owner, pods_by_job)
        except Exception as error:
            metrics.reconcile_errors.labels(type(error).__name__).inc()
            raise  # kopf logs it and retries on the next tick


async def _reconcile(
    body: kopf.Body, raw_spec: dict[str, Any], meta: dict[str, Any], status: dict[str, Any], namespace: str,
    name: str, patch: kopf.Patch, memo: kopf.Memo, jobs_index: kopf.Index[Any, Any],
    pods_index: kopf.Index[Any, Any],
) -> None:
    settings: OperatorSettings = memo["settings"]
    metrics: OperatorMetrics = memo["metrics"]
    client: KubeClient = memo["client"]
    generation = int(meta.get("generation") or 1)
    now = dt.datetime.now(dt.UTC)
    written: WrittenStatus = memo["written_status"]
    status = written.view((namespace, name), generation, status)  # what we wrote, if the watch lags behind
    if is_terminal(status, meta):
        return  # terminal for this generation: nothing to do until the spec changes
    try:
        spec = parse_spec(raw_spec)
        refused = image_refusal(spec, (settings.worker_image_cpu, settings.worker_image_gpu),
                                settings.worker_allowed_images, settings.worker_image_override)
    except SpecError as error:
        refused, reason = error.message, SpecError.reason
    else:
        reason = reasons.IMAGE_NOT_ALLOWED
    if refused:
        new_status = invalid_spec_status(status, generation, refused, now, reason)
        if new_status != {k: status.get(k) for k in new_status}:
            patch.status.update(new_status)
            written.remember((namespace, name), generation, new_status)
            await client.post_event(dict(body), "Warning", reason, refused)
            metrics.set_phase(namespace, name, "Failed")
        return

    jobs = list(jobs_index.get((namespace, name), []))
    views = [job_view(j, list(pods_index.get((namespace, j["name"]), []))) for j in jobs if not j["deleting"]]
    # Free slots only matter when a step is ready to start; counting them walks every Job there is.
    decision = decide(spec, generation, views, now)
    active: ActiveJobs = memo["active_jobs"]
    if decision.create:
        active_total, active_gpu = active.current(lambda: _active_jobs(jobs_index))
        capacity = Capacity(jobs=max(0, settings.max_jobs - active_total),
                            gpu_jobs=max(0, settings.max_gpu_jobs - active_gpu))
        decision = decide(spec, generation, views, now, capacity)

    recent: RecentCreations = memo["recent_jobs"]
    recent.seen(j["name"] for j in jobs)
    for job_name_ in decision.delete:
        await client.delete_job(namespace, job_name_)
    worker = settings.worker()
    for step, attempt in decision.create:
        job = build_job(dict(body), spec, step, attempt, worker)
        if recent.pending(job["metadata"]["name"]):
            continue  # created moments ago; its watch event has not reached the index yet
        if settings.worker_s3_role_arn:  # issue 13: per-Job STS credentials (controller/credentials.py)
            job = with_credentials(job, credentials_secret_name(job["metadata"]["name"]))
        kopf.adopt(job, owner=body)  # ownerReferences: deleting the resource deletes its Jobs
        created = await client.create_job(namespace, job)
        if created:
            metrics.jobs_created.labels(step.phase).inc()
            if settings.worker_s3_role_arn:
                minted = await asyncio.to_thread(
                    mint_credentials, memo["sts"], spec, namespace, name, generation, step.phase,
                    settings.worker_s3_role_arn, settings.worker_s3_credentials_seconds)
                await client.create_secret(namespace, credentials_secret(created, minted))
        recent.add(job["metadata"]["name"])
        active.created(gpu=_target_is_gpu(spec, step.target))
    counted: set[str] = memo["counted_jobs"]
    for view in views:
        if view.state in ("succeeded", "failed") and view.name not in counted:
            counted.add(view.name)
            duration = ((view.finished_at - view.started_at).total_seconds()
                        if view.finished_at and view.started_at else None)
            metrics.job_finished(view.step.phase, view.state, duration)

    uri = run_uri(spec, namespace, name, generation)
    results: RunResults | None = None
    promotion: PromotionOutcome | None = None
    if decision.phase == "Succeeded":
        try:
            results, promotion = await asyncio.to_thread(read_outcome, spec, uri)
        except (OptismithError, ValueError) as error:
            decision = Decision("Failed", reasons.RESULTS_UNREADABLE,
                                f"cannot read {uri}/{layout.RESULTS}: {error}", steps=decision.steps)
    if status.get("observedGeneration") not in (None, generation) and status.get("phase") not in (
            "Succeeded", "Failed"):
        await client.post_event(dict(body), "Normal", reasons.SUPERSEDED, f"generation "
                                f"{status.get('observedGeneration')} superseded by {generation}; its Jobs were deleted")
    new_status = build_status(status, decision, generation, uri, now, results, promotion,
                              promotion_configured=spec.promotion is not None)
    if any(status.get(k) != v for k, v in new_status.items()):
        patch.status.update(new_status)
        written.remember((namespace, name), generation, new_status)
        await _event(client, dict(body), decision,
                     status.get("phase") if status.get("observedGeneration") == generation else None, new_status)
    metrics.set_phase(namespace, name, decision.phase)
    metrics.set_queued(namespace, name, sum(1 for s in decision.steps if s.state == "queued"))
    if results is not None:
        metrics.observe_results(namespace, name, results)


def register_handlers(registry: kopf.OperatorRegistry, settings: OperatorSettings, metrics: OperatorMetrics) -> None:
    """Every handler of the operator, into `registry`, with these settings."""

    @kopf.on.startup(registry=registry)
    async def configure(memo: kopf.Memo, **kwargs: Any) -> None:
        settings_: kopf.OperatorSettings = kwargs["settings"]  # kopf's own; `settings` here is ours
        settings_.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="optismith.io")
        settings_.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="optismith.io", key="last-handled-configuration")
        settings_.persistence.finalizer = "optismith.io/finalizer"
        # Our own events are posted explicitly, one per transition; kopf's per-handler chatter is not.
        settings_.posting.enabled = False
        settings_.watching.server_timeout = 300
        # At most 200 resources handled at once bounds memory in a burst (1000 uncapped workers peaked 50 MB
        # higher), and a worker gives its slot back 0.5 s after its last event: with kopf's default of 5 s, a
        # burst of 500 new resources waited up to 20 s for a slot, and so for its first Job.
        settings_.queueing.worker_limit = 200
        settings_.queueing.idle_timeout = 0.5
        memo["settings"] = settings
        memo["metrics"] = metrics
        memo["client"] = KubeClient()
        memo["counted_jobs"] = set()
        memo["locks"] = {}
        memo["recent_jobs"] = RecentCreations()
        memo["active_jobs"] = ActiveJobs()
        memo["written_status"] = WrittenStatus(ttl=2 * settings.reconcile_interval)
        if settings.worker_s3_role_arn:
            from optismith.storage.s3 import sts_client

            memo["sts"] = sts_client()
        if settings.metrics_port:
            metrics.serve(settings.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        client = memo.get("client")
        if client is not None:
            client.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.index("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGER}, id="jobs_by_owner", registry=registry)
    def jobs_by_owner(namespace: str | None, meta: kopf.Meta, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        owner = _owner(dict(meta))
        return {(namespace, owner): job_summary(dict(body))} if owner else {}

    @kopf.index("", "v1", "pods", labels={LABEL_MANAGED_BY: MANAGER}, id="pods_by_job", registry=registry)
    def pods_by_job(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        job = labels.get("job-name")
        return {(namespace, job): pod_summary(dict(body))} if job else {}

    def in_progress(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
        return not is_terminal(status, meta)

    async def reconcile_handler(**kwargs: Any) -> None:
        await reconcile(**kwargs)

    interval = settings.reconcile_interval
    # A failed reconciliation (say, a 500 from the API server) is retried at the reconcile interval, not after
    # kopf's default of 60 s: every attempt is idempotent, and a minute of silence looks like a hung operator.
    # The timer starts one interval after the create/resume handlers have reconciled (at once, it only
    # repeated their work and raced them into duplicate Job creations), and it stops for runs that have
    # ended: they have nothing left to reconcile, and every tick costs CPU for as long as the resource exists.
    kopf.timer(API_GROUP, API_VERSION, PLURAL, interval=interval, sharp=False, id="reconcile", backoff=interval,
               initial_delay=interval, when=in_progress, registry=registry)(reconcile_handler)
    kopf.on.resume(API_GROUP, API_VERSION, PLURAL, id="resume", backoff=interval, registry=registry)(reconcile_handler)
    kopf.on.create(API_GROUP, API_VERSION, PLURAL, id="create", backoff=interval, registry=registry)(reconcile_handler)
    kopf.on.update(API_GROUP, API_VERSION, PLURAL, field="spec", id="update", backoff=interval,
                   registry=registry)(reconcile_handler)

    # Not optional: the finalizer it keeps lets a finished run's metrics be forgotten on deletion (the timer,
    # which also needs one, stops when a run ends).
    @kopf.on.delete(API_GROUP, API_VERSION, PLURAL, id="forget", registry=registry)
    def forget(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
        metrics.forget(namespace or "", name)
        written: WrittenStatus | None = memo.get("written_status")
        if written is not None:
            written.forget((namespace or "", name))
