"""Every reason the operator reports (conditions, events, step records), registered once with what it
means. Worker failures report the reason of their error class (optismith.errors); `all_reasons` is both
sets, and docs/troubleshooting.md explains each of them (a test checks it against this registry)."""

from __future__ import annotations

from dataclasses import dataclass

from optismith.errors import ALL_ERRORS


@dataclass(frozen=True)
class Reason:
    name: str
    meaning: str
    success: bool = False  # a good outcome: still documented, never a problem to fix


_REGISTRY: dict[str, Reason] = {}


def _reason(name: str, meaning: str, *, success: bool = False) -> str:
    _REGISTRY[name] = Reason(name, meaning, success)
    return name


# Run phases while the run is in progress (condition Succeeded=Unknown).
RUNNING = _reason("Running", "Jobs of the run are pending or running")
QUEUED = _reason("Queued", "a step waits for a free Job slot (the operator's concurrency limit)")
BACKOFF = _reason("Backoff", "a Job failed and its retry waits for the backoff to pass")
RECONCILING = _reason("Reconciling", "the operator is working on the current generation", success=True)
# Run outcomes.
COMPLETED = _reason("Completed", "every step of the run succeeded", success=True)
SUPERSEDED = _reason("Superseded", "a new generation replaced the run in progress; its Jobs were deleted")
JOB_FAILED = _reason("JobFailed", "a stage's Job failed after its last attempt")
DEADLINE_EXCEEDED = _reason("DeadlineExceeded", "a Job ran past spec.execution.stageDeadline")
UNSCHEDULABLE = _reason("Unschedulable",
                        "a Job's pod could not be scheduled within spec.execution.unschedulableTimeout")
IMAGE_NOT_ALLOWED = _reason("ImageNotAllowed", "a target names a worker image the operator's settings do not allow")
RESULTS_UNREADABLE = _reason("ResultsUnreadable", "the run finished but its results.json cannot be read")
# The accuracy gate and promotion.
PASSED = _reason("Passed", "a variant passed every gate", success=True)
NO_VARIANT_PASSED = _reason("NoVariantPassed", "no variant passed the gates")
GATE_FAILED = _reason("GateFailed", "the run has no winner, so it is not Ready")
PROMOTED = _reason("Promoted", "the winner was promoted to spec.promotion.uri", success=True)
NOT_PROMOTED = _reason("NotPromoted", "the promote step left the previous promotion untouched")
NOT_CONFIGURED = _reason("NotConfigured", "spec.promotion is not set, so nothing is promoted")
PROMOTION_FAILED = _reason("PromotionFailed", "a winner passed the gates but was not promoted")
SUCCEEDED = _reason("Succeeded", "the run has a usable winner", success=True)
FAILED = _reason("Failed", "the run failed for a reason its worker reported no further")


def operator_reasons() -> dict[str, Reason]:
    return dict(_REGISTRY)


def all_reasons() -> dict[str, Reason]:
    """The operator's reasons and every error class's (what a failed worker reports)."""
    found = {error.reason: Reason(error.reason, (error.__doc__ or "").strip()) for error in ALL_ERRORS}
    return {**found, **_REGISTRY}
