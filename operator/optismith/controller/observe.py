"""Turn observed Kubernetes objects (Jobs and their Pods) into the planner's JobViews. Pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError

from optismith.controller import reasons
from optismith.controller.planner import JobState, JobView
from optismith.controller.specs import LABEL_ATTEMPT, LABEL_GENERATION, LABEL_PHASE, LABEL_TARGET
from optismith.pipeline.plan import JobStep
from optismith.results import TerminationMessage


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_summary(job: dict[str, Any]) -> dict[str, Any]:
    """The few fields of a Job the operator needs, small enough to keep for thousands of Jobs."""
    metadata, status = job.get("metadata", {}), job.get("status") or {}
    conditions = status.get("conditions") or []
    failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None)
    complete = next((c for c in conditions if c.get("type") == "Complete" and c.get("status") == "True"), None)
    labels = metadata.get("labels") or {}
    pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    # A staged phase's GPU is its execute init container's (optismith.controller.specs).
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    gpu = any("nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}) for c in containers)
    return {
        "name": metadata.get("name"),
        "generation": int(labels.get(LABEL_GENERATION, "0") or 0),
        "phase": labels.get(LABEL_PHASE, ""),
        "target": labels.get(LABEL_TARGET),
        "attempt": int(labels.get(LABEL_ATTEMPT, "1") or 1),
        "created": metadata.get("creationTimestamp"),
        "started": status.get("startTime"),
        "finished": status.get("completionTime") or (failed or {}).get("lastTransitionTime"),
        "succeeded": bool(complete) or int(status.get("succeeded") or 0) > 0,
        "failed": bool(failed) or int(status.get("failed") or 0) > 0,
        "failed_reason": (failed or {}).get("reason", ""),
        "failed_message": (failed or {}).get("message", ""),
        "active": int(status.get("active") or 0),
        "gpu": gpu,
        "deleting": bool(metadata.get("deletionTimestamp")),
    }


def pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    unschedulable = next((c for c in conditions if c.get("type") == "PodScheduled" and c.get("status") == "False"
                          and c.get("reason") == reasons.UNSCHEDULABLE), None)
    terminated: dict[str, Any] = {}
    # A failed init container (a staged phase's fetch or execute step) ends the pod: its message explains it.
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = (container.get("state") or {}).get("terminated")
        if state and not (terminated and terminated.get("exitCode")):
            terminated = state
    return {
        "name": (pod.get("metadata") or {}).get("name"),
        "created": (pod.get("metadata") or {}).get("creationTimestamp"),
        "unschedulable_since": (unschedulable or {}).get("lastTransitionTime") if unschedulable else None,
        "unschedulable_message": (unschedulable or {}).get("message", ""),
        "exit_code": terminated.get("exitCode"),
        "termination_message": terminated.get("message", ""),
        "termination_reason": terminated.get("reason", ""),
    }


def explain_termination(message: str) -> tuple[str, str]:
    """(reason, message) from a worker's TerminationMessage; from the raw text when it is none (Kubernetes
    uses the log tail when the worker died before writing it)."""
    text = (message or "").strip()
    if text.startswith("{"):
        try:
            summary = TerminationMessage.model_validate_json(text)
            return summary.reason or "", summary.message
        except ValidationError:
            pass
    lines = [line for line in text.splitlines() if line.strip()]
    return "", " | ".join(lines[-3:])[:1000]


def reported_failure(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """(reason, message) when a worker that exited 0 says it failed: its process ended mid-stage (an exit(0)
    inside a library) before it could replace the failure it writes first."""
    text = ((pod or {}).get("termination_message") or "").strip()
    if not text.startswith("{"):
        return None
    try:
        summary = TerminationMessage.model_validate_json(text)
    except ValidationError:
        return None
    return (summary.reason or reasons.JOB_FAILED, summary.message) if summary.status == "failed" else None


def job_view(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobView:
    state: JobState
    reason, message = "", ""
    pod = max(pods, key=lambda p: p.get("created") or "") if pods else None
    failure = reported_failure(pod) if job["succeeded"] else None
    if failure is not None:
        state, (reason, message) = "failed", failure
    elif job["succeeded"]:
        state = "succeeded"
    elif job["failed"]:
        state = "failed"
        reason, message = explain_termination((pod or {}).get("termination_message", ""))
        if job["failed_reason"] == reasons.DEADLINE_EXCEEDED:
            reason = reasons.DEADLINE_EXCEEDED
            message = message or job["failed_message"] or "the Job ran past spec.execution.stageDeadline"
        reason = reason or job["failed_reason"] or reasons.JOB_FAILED
        message = message or job["failed_message"] or f"exit code {(pod or {}).get('exit_code')}"
    elif pod and pod.get("unschedulable_since"):
        state = "unschedulable"
        reason, message = reasons.UNSCHEDULABLE, pod.get("unschedulable_message", "")
    elif job["active"] or job["started"]:
        state = "running"
    else:
        state = "pending"
    return JobView(
        name=job["name"],
        generation=job["generation"],
        step=JobStep(job["phase"], job["target"]),
        attempt=job["attempt"],
        state=state,
        reason=reason,
        message=message,
        created_at=parse_time(job["created"]),
        started_at=parse_time(job["started"]),
        finished_at=parse_time(job["finished"]),
        unschedulable_since=parse_time((pod or {}).get("unschedulable_since")),
        uses_gpu=job["gpu"],
    )
