"""
The Job controller's part of the kubelet stand-in: Jobs -> Pods -> Job status.

It reacts to Job and Pod events over HTTP, like kube-controller-manager does:
creates pods from the template, counts outcomes, applies ``backoffLimit`` and
``activeDeadlineSeconds``, and writes ``status`` (active/ready/succeeded/failed,
startTime, completionTime, conditions with the real reasons and messages).
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import logging
import time
from typing import Any

from .client import ApiStatusError, AsyncClient, resource_path
from .informers import Informer
from .store import timestamp

logger = logging.getLogger(__name__)
Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
UID_LABEL = "batch.kubernetes.io/controller-uid"


def _parse_time(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def _condition(kind: str, reason: str, message: str) -> Obj:
    now = timestamp()
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


@dataclasses.dataclass
class JobState:
    expected: set[str] = dataclasses.field(default_factory=set)  # created pods not yet seen in the cache
    lost: int = 0  # active pods deleted by others: they count as failed
    terminating: set[str] = dataclasses.field(default_factory=set)  # pods we deleted ourselves
    last_failure: float = 0.0
    started: float | None = None


class JobController:
    def __init__(self, client: AsyncClient, *, backoff_base: float = 0.1, namespace: str | None = None) -> None:
        self.client = client
        self.backoff_base = backoff_base
        self.jobs = Informer(client, resource_path("batch/v1", "jobs", namespace), self._on_job)
        self.pods = Informer(client, resource_path("v1", "pods", namespace), self._on_pod, labelSelector=UID_LABEL)
        self._states: dict[str, JobState] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._expiring: set[str] = set()  # uids with a scheduled TTL deletion
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.jobs.run())
            tg.create_task(self.pods.run())
            tg.create_task(self._worker())

    def _enqueue(self, uid: str, delay: float = 0.0) -> None:
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._enqueue, uid)
        elif uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def _on_job(self, kind: str, job: Obj) -> None:
        uid = job["metadata"]["uid"]
        if kind == "DELETED":
            self._states.pop(uid, None)
        else:
            self._enqueue(uid)

    def _on_pod(self, kind: str, pod: Obj) -> None:
        uid = (pod["metadata"].get("labels") or {}).get(UID_LABEL)
        state = self._states.get(uid or "")
        if uid is None or state is None:
            return
        name = pod["metadata"]["name"]
        state.expected.discard(name)
        phase = (pod.get("status") or {}).get("phase")
        if kind == "DELETED" and phase not in TERMINAL and name not in state.terminating:
            state.lost += 1
            state.last_failure = time.monotonic()
        if phase == "Failed" and kind != "DELETED":
            state.last_failure = time.monotonic()
        self._enqueue(uid)

    async def _worker(self) -> None:
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            try:
                await self._reconcile(uid)
            except ApiStatusError as e:
                if e.status in (404, 409):
                    self._enqueue(uid, 0.05)  # gone or stale: the next event settles it
                else:
                    logger.warning("Job %s reconciliation failed: %s", uid, e)
                    self._enqueue(uid, 0.5)
            except Exception:
                logger.exception("Job %s reconciliation crashed", uid)

    def _pods_of(self, uid: str) -> list[Obj]:
        return [p for p in self.pods.cache.values() if (p["metadata"].get("labels") or {}).get(UID_LABEL) == uid]

    async def _reconcile(self, uid: str) -> None:
        job = self.jobs.cache.get(uid)
        if job is not None and is_finished(job):
            self._schedule_ttl(job)
        if job is None or is_finished(job) or job["spec"].get("suspend"):
            return
        state = self._states.setdefault(uid, JobState())
        spec = job["spec"]
        meta = job["metadata"]
        status = dict(job.get("status") or {})
        pods = self._pods_of(uid)
        seen = {p["metadata"]["name"] for p in pods}
        state.expected -= seen
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in TERMINAL and not p["metadata"].get("deletionTimestamp")
        ]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        restarts = sum(
            cs.get("restartCount", 0) for p in active for cs in (p.get("status") or {}).get("containerStatuses") or []
        )
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed") + state.lost
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") or 1)
        backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
        deadline = spec.get("activeDeadlineSeconds")

        if not status.get("startTime"):
            status["startTime"] = timestamp()
        elapsed = time.time() - _parse_time(status["startTime"])
        conditions: list[Obj] = list(status.get("conditions") or [])
        finished = False
        if deadline is not None and elapsed >= float(deadline):
            failed += await self._delete_pods(state, active)
            active = []
            reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
            conditions += [
                _condition("FailureTarget", reason, message),
                _condition("Failed", reason, message),
            ]
            finished = True
        elif succeeded >= completions:
            conditions += [
                _condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
            ]
            status["completionTime"] = timestamp()
            finished = True
        elif failed + restarts > backoff_limit:
            failed += await self._delete_pods(state, active)
            active = []
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            conditions += [
                _condition("FailureTarget", reason, message),
                _condition("Failed", reason, message),
            ]
            finished = True
        else:
            wanted = min(parallelism, completions - succeeded) - len(active) - len(state.expected)
            delay = self.backoff_base * (2 ** (failed - 1)) - (time.monotonic() - state.last_failure) if failed else 0.0
            if wanted > 0 and delay > 0:
                self._enqueue(uid, delay)
            elif wanted > 0 and await self._still_exists(job):
                for _ in range(wanted):
                    pod = await self._create_pod(job)
                    state.expected.add(pod["metadata"]["name"])
            if deadline is not None:
                self._enqueue(uid, max(0.0, float(deadline) - elapsed) + 0.01)

        ready = sum(
            1
            for p in active
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        status.update(
            {
                "active": (len(active) + len(state.expected)) or None,
                "ready": ready,
                "terminating": 0,
                "succeeded": succeeded or None,
                "failed": failed or None,
                "uncountedTerminatedPods": {},
                "conditions": conditions or None,
            }
        )
        new_status = {k: v for k, v in status.items() if v is not None}
        if new_status != (job.get("status") or {}) or finished:
            path = resource_path("batch/v1", "jobs", meta["namespace"], meta["name"], "status")
            patch = {"status": {**dict.fromkeys(job.get("status") or {}), **new_status}}
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}  # optimistic concurrency
            updated = await self.client.patch(path, patch)
            self.jobs.cache[uid] = updated
            if finished:
                self._schedule_ttl(updated)

    def _schedule_ttl(self, job: Obj) -> None:
        """The TTL-after-finished controller: delete finished Jobs (and their pods) after the TTL."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        uid = job["metadata"]["uid"]
        if ttl is None or uid in self._expiring:
            return
        self._expiring.add(uid)
        finished_at = max(_parse_time(c["lastTransitionTime"]) for c in job["status"]["conditions"])
        meta = job["metadata"]

        async def expire() -> None:
            await asyncio.sleep(max(0.0, finished_at + float(ttl) - time.time()))
            path = resource_path("batch/v1", "jobs", meta["namespace"], meta["name"])
            try:
                await self.client.delete(path, {"propagationPolicy": "Background", "preconditions": {"uid": uid}})
            except ApiStatusError as e:
                if e.status not in (404, 409):
                    raise

        task = asyncio.create_task(expire())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _still_exists(self, job: Obj) -> bool:
        # Pod deletions by the GC can arrive before the Job's own deletion event (another stream);
        # a fresh read avoids replacing pods of a Job that is already gone.
        meta = job["metadata"]
        try:
            fresh = await self.client.get(resource_path("batch/v1", "jobs", meta["namespace"], meta["name"]))
        except ApiStatusError as e:
            if e.status == 404:
                return False
            raise
        return bool(fresh["metadata"]["uid"] == meta["uid"] and not fresh["metadata"].get("deletionTimestamp"))

    async def _create_pod(self, job: Obj) -> Obj:
        meta = job["metadata"]
        template = job["spec"]["template"]
        template_meta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(template_meta.get("labels") or {}),
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        created: Obj = await self.client.create(resource_path("v1", "pods", meta["namespace"]), pod)
        return created

    async def _delete_pods(self, state: JobState, pods: list[Obj]) -> int:
        for pod in pods:
            name = pod["metadata"]["name"]
            state.terminating.add(name)
            try:
                await self.client.delete(
                    resource_path("v1", "pods", pod["metadata"]["namespace"], name),
                    {"propagationPolicy": "Background"},
                )
            except ApiStatusError as e:
                if e.status != 404:
                    raise
        return len(pods)
