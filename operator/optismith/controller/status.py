"""The resource's status: metav1.Condition-shaped conditions that kstatus, Flux, Argo CD and
`kubectl wait` understand, per-step records, and a bounded summary of the results (the full results
stay in the run directory)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from optismith.controller import reasons
from optismith.controller.planner import Decision, StepStatus
from optismith.errors import SpecError
from optismith.results import PromotionOutcome, RunResults

CONDITION_TYPES = ("Succeeded", "Ready", "Reconciling", "Stalled", "AccuracyGatePassed", "Promoted")
MAX_VARIANTS_IN_STATUS = 24
MAX_MESSAGE = 1024


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Replace one condition; lastTransitionTime moves only when the status value changes."""
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != status
    condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "observedGeneration": generation,
        "lastTransitionTime": timestamp(now) if changed or previous is None
        else previous.get("lastTransitionTime", timestamp(now)),
    }
    others = [c for c in conditions if c.get("type") != type_]
    return sorted([*others, condition], key=lambda c: CONDITION_TYPES.index(c["type"])
                  if c["type"] in CONDITION_TYPES else 99)


def _step_record(step: StepStatus) -> dict[str, Any]:
    record: dict[str, Any] = {"name": step.step.key, "phase": step.step.phase, "state": step.state,
                              "attempts": step.attempts}
    if step.step.target:
        record["target"] = step.step.target
    if step.job:
        record["job"] = step.job
    if step.started_at:
        record["startedAt"] = timestamp(step.started_at)
    if step.finished_at:
        record["finishedAt"] = timestamp(step.finished_at)
    if step.message:
        record["message"] = step.message[:512]
    if step.reason:
        record["reason"] = step.reason
    return record


def _fmt(value: float | None, pattern: str) -> str | None:
    return None if value is None else pattern.format(value)


def summarize_results(results: RunResults) -> dict[str, Any]:
    """The part of results.json that belongs in status: per-variant headline numbers and the winner."""
    selection = results.selection
    candidates = selection.candidates if selection else []
    variants = [{
        "name": c.variant,
        "target": c.target,
        "latencyP50Ms": _fmt(c.latency_p50_ms, "{:.4f}"),
        "latencyP99Ms": _fmt(c.latency_p99_ms, "{:.4f}"),
        "throughputPerSecond": _fmt(c.throughput_per_s, "{:.1f}"),
        "sizeBytes": c.size_bytes,
        "accuracyDrop": _fmt(c.accuracy_drop, "{:.4f}"),
        "speedup": _fmt(c.speedup, "{:.2f}"),
        "passed": c.passed,
    } for c in candidates[:MAX_VARIANTS_IN_STATUS]]
    summary: dict[str, Any] = {
        "variants": variants,
        "selection": {"outcome": selection.outcome if selection else "unknown",
                      "objective": selection.objective if selection else None,
                      "batchSize": selection.batch_size if selection else None,
                      "message": (selection.message if selection else "")[:512]},
    }
    chosen = next((c for c in candidates if selection and c.variant == selection.winner
                   and c.target == selection.winner_target), None)
    if selection and selection.winner and chosen is not None:
        summary["winner"] = {
            "variant": selection.winner,
            "target": selection.winner_target,
            "speedup": _fmt(chosen.speedup, "{:.2f}x"),
            "latencyP50": _fmt(chosen.latency_p50_ms, "{:.3f}ms"),
            "latencyP99": _fmt(chosen.latency_p99_ms, "{:.3f}ms"),
            "accuracyDrop": _fmt(None if chosen.accuracy_drop is None else chosen.accuracy_drop * 100, "{:.2f}%"),
            "sizeBytes": chosen.size_bytes,
        }
    return summary


def promoted_summary(promotion: PromotionOutcome) -> dict[str, Any]:
    """status.promoted: the stable URI, what is there, and the digest an automation bumps a server with."""
    digest = promotion.digest or ""
    summary: dict[str, Any] = {"uri": promotion.uri, "variant": promotion.variant,
                               "digest": digest if digest.startswith("sha256:") else f"sha256:{digest}"}
    for key, value in (("version", promotion.version), ("runtime", promotion.runtime), ("format", promotion.format),
                       ("storageUri", promotion.storage_uri)):
        if value is not None:
            summary[key] = value
    return summary


def degraded(status: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when a completed run is not usable (no winner, or not promoted): an outcome that
    deserves a Warning event, not a Normal one."""
    if status.get("phase") != "Succeeded":
        return None
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "True":
        return None
    return str(ready.get("reason", "")), str(ready.get("message", ""))


def build_status(
    previous: dict[str, Any],
    decision: Decision,
    generation: int,
    run_uri: str,
    now: dt.datetime,
    results: RunResults | None = None,
    promotion: PromotionOutcome | None = None,
    promotion_configured: bool = False,
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    superseded = previous.get("observedGeneration") not in (None, generation)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": decision.phase,
        "runUri": run_uri,
        "stages": [_step_record(s) for s in decision.steps],
    }
    if superseded:
        # Stale summaries of the superseded run must not linger next to the new run's progress.
        conditions = [c for c in conditions if c["type"] in ("Ready",)]
        status["supersededGeneration"] = previous.get("observedGeneration")

    def cond(type_: str, value: str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, value, reason, message, generation, now)

    if decision.phase == "Succeeded" and results is not None:
        summary = summarize_results(results)
        status.update(summary)
        passed = summary["selection"]["outcome"] == "selected"
        gate_message = summary["selection"]["message"]
        cond("Succeeded", "True", reasons.COMPLETED, f"run complete: {gate_message}")
        cond("Reconciling", "False", reasons.COMPLETED, "run complete")
        cond("AccuracyGatePassed", "True" if passed else "False",
             reasons.PASSED if passed else reasons.NO_VARIANT_PASSED, gate_message)
        promoted = promotion is not None and promotion.promoted
        if promotion_configured:
            if promotion is not None and promotion.promoted:
                status["promoted"] = promoted_summary(promotion)
                cond("Promoted", "True", reasons.PROMOTED, f"{promotion.variant} promoted to {promotion.uri}")
            else:
                reason = promotion.reason if promotion is not None else "no variant passed the gates"
                cond("Promoted", "False", reasons.NOT_PROMOTED, f"previous promotion left untouched: {reason}")
        else:
            cond("Promoted", "False", reasons.NOT_CONFIGURED, "spec.promotion is not set")
        ready = passed and (not promotion_configured or promoted)
        if ready:
            cond("Ready", "True", reasons.SUCCEEDED, f"winner {summary.get('winner', {}).get('variant')}")
            cond("Stalled", "False", reasons.COMPLETED, "")
        elif passed:
            reason = promotion.reason if promotion is not None else "the promote step did not promote the winner"
            cond("Ready", "False", reasons.PROMOTION_FAILED, reason)
            cond("Stalled", "True", reasons.PROMOTION_FAILED, f"{reason}; the previous promotion is untouched")
        else:
            cond("Ready", "False", reasons.GATE_FAILED, gate_message)
            cond("Stalled", "True", reasons.NO_VARIANT_PASSED, f"{gate_message}; change the spec to try again")
    elif decision.phase == "Failed":
        cond("Succeeded", "False", decision.reason, decision.message)
        cond("Ready", "False", decision.reason, decision.message)
        cond("Reconciling", "False", decision.reason, decision.message)
        cond("Stalled", "True", decision.reason, decision.message)
    else:
        cond("Succeeded", "Unknown", decision.reason, decision.message)
        cond("Reconciling", "True", decision.reason, decision.message)
        cond("Stalled", "False", decision.reason, "")
        if not any(c["type"] == "Ready" for c in conditions) or superseded:
            cond("Ready", "False", reasons.RECONCILING, decision.message)
    status["conditions"] = conditions
    return status


def invalid_spec_status(previous: dict[str, Any], generation: int, message: str, now: dt.datetime,
                        reason: str = SpecError.reason) -> dict[str, Any]:
    """A resource the operator will not run as it is (an invalid spec, a refused image): Stalled until it changes."""
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])
    for type_, value in (("Stalled", "True"), ("Succeeded", "False"), ("Ready", "False"), ("Reconciling", "False")):
        conditions = set_condition(conditions, type_, value, reason, message, generation, now)
    return {"observedGeneration": generation, "phase": "Failed", "conditions": conditions, "stages": []}
