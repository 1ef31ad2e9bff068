"""Status conditions follow metav1.Condition and the kstatus conventions."""

from __future__ import annotations

import datetime as dt

from optismith.controller.planner import Decision
from optismith.controller.status import build_status, invalid_spec_status, set_condition, summarize_results
from optismith.results import PromotionOutcome
from tests.controller.controller_results import RESULTS, run_results

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def test_last_transition_time_moves_only_on_status_change() -> None:
    first = set_condition([], "Ready", "False", "Reconciling", "a", 1, T0)
    same = set_condition(first, "Ready", "False", "Reconciling", "b", 1, T1)
    flipped = set_condition(same, "Ready", "True", "Succeeded", "c", 1, T1)
    assert same[0]["lastTransitionTime"] == "2026-11-22T12:00:00Z"
    assert flipped[0]["lastTransitionTime"] == "2026-11-22T12:05:00Z"


def test_running_then_succeeded() -> None:
    running = build_status({}, Decision("Running", "Running", "1/4 steps done"), 1, "s3://r/x", T0)
    c = conditions(running)
    assert c["Reconciling"]["status"] == "True" and c["Succeeded"]["status"] == "Unknown"
    assert c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "False"
    for condition in running["conditions"]:
        assert set(condition) == {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
    done = build_status(
        running,
        Decision("Succeeded", "Completed", "ok"),
        1,
        "s3://r/x",
        T1,
        run_results(),
        PromotionOutcome(promoted=True, uri="s3://p/x", digest="sha256:ab", variant="tflite-int8"),
        promotion_configured=True,
    )
    c = conditions(done)
    assert {k: c[k]["status"] for k in c} == {
        "Succeeded": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "AccuracyGatePassed": "True",
        "Promoted": "True",
    }
    assert done["winner"]["variant"] == "tflite-int8" and done["winner"]["speedup"] == "3.10x"
    assert done["promoted"] == {"uri": "s3://p/x", "digest": "sha256:ab", "variant": "tflite-int8"}
    assert done["observedGeneration"] == 1


def test_no_variant_passed_is_stalled_not_ready() -> None:
    failed_gate = run_results({
        **RESULTS["selection"],
        "winner": None,
        "winner_target": None,
        "outcome": "no-variant-passed",
        "message": "no variant passed: accuracy drop above 1%",
    })
    status = build_status(
        {},
        Decision("Succeeded", "Completed", "ok"),
        1,
        "s3://r/x",
        T0,
        failed_gate,
        PromotionOutcome(promoted=False, reason="no winner"),
        promotion_configured=True,
    )
    c = conditions(status)
    assert c["AccuracyGatePassed"]["status"] == "False" and c["Promoted"]["status"] == "False"
    assert c["Ready"]["status"] == "False" and c["Stalled"]["status"] == "True"
    assert "winner" not in status


def test_failure_and_invalid_spec() -> None:
    failed = build_status({}, Decision("Failed", "DeadlineExceeded", "prepare ran too long"), 2, "u", T0)
    c = conditions(failed)
    assert c["Stalled"]["reason"] == "DeadlineExceeded" and c["Succeeded"]["status"] == "False"
    invalid = invalid_spec_status({}, 3, "spec.benchmark.batchSizes[0]: must be >= 1", T0)
    assert conditions(invalid)["Stalled"]["message"].startswith("spec.benchmark.batchSizes[0]")


def test_summary_is_bounded() -> None:
    many = run_results({**RESULTS["selection"], "candidates": RESULTS["selection"]["candidates"] * 40})
    assert len(summarize_results(many)["variants"]) == 24
