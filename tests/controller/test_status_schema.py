"""The CRD documents the status the operator writes (kubectl explain mo.status.winner), its printer columns
show the verdict (Ready) and, with -o wide, what was compared; Degraded outcomes are told apart."""

from __future__ import annotations

from typing import Any

from optismith.controller.crd import PRINTER_COLUMNS, build_crd
from optismith.controller.planner import Decision
from optismith.controller.status import build_status, degraded, invalid_spec_status
from optismith.results import PromotionOutcome
from tests.controller.controller_results import RESULTS, run_results
from tests.controller.test_status import T0

PROMOTION = PromotionOutcome(promoted=True, uri="s3://p/x", digest="sha256:ab", variant="tflite-int8", version=4,
                             runtime="tflite", format="tflite", storage_uri="s3://p/x/kserve")


def status_schema() -> dict[str, Any]:
    crd = build_crd()
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def undocumented(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths of `value` the schema has no described property for."""
    missing = [] if schema.get("description") else [path]
    if isinstance(value, dict):
        for key, item in value.items():
            prop = schema.get("properties", {}).get(key)
            missing += [f"{path}.{key}"] if prop is None else undocumented(item, prop, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value[:1]:
            missing += undocumented(item, schema.get("items", {}), f"{path}[]")
    return missing


def statuses() -> list[dict[str, Any]]:
    done = build_status({}, Decision("Succeeded", "Completed", "ok"), 1, "s3://r/x", T0, run_results(), PROMOTION,
                        promotion_configured=True)
    superseded = build_status({**done, "observedGeneration": 1}, Decision("Running", "Running", "1/4"), 2, "s3://r/y",
                              T0)
    failed = build_status({}, Decision("Failed", "JobFailed", "boom"), 1, "s3://r/x", T0)
    return [done, superseded, failed, invalid_spec_status({}, 1, "bad", T0)]


def test_every_status_field_the_operator_writes_is_described() -> None:
    for status in statuses():
        assert undocumented(status, status_schema(), "status") == []
    assert status_schema()["properties"]["promoted"]["properties"]["digest"]["description"]


def test_promoted_carries_what_a_gitops_bump_and_kserve_need() -> None:
    done = statuses()[0]
    assert done["promoted"] == {"uri": "s3://p/x", "digest": "sha256:ab", "variant": "tflite-int8", "version": 4,
                                "runtime": "tflite", "format": "tflite", "storageUri": "s3://p/x/kserve"}


def test_printer_columns_lead_with_ready_and_wide_adds_objective_target_and_run() -> None:
    names = [c["name"] for c in PRINTER_COLUMNS if not c.get("priority")]
    wide = [c["name"] for c in PRINTER_COLUMNS if c.get("priority") == 1]
    assert names[:2] == ["Ready", "Reason"] and names[-1] == "Age"
    assert {"Objective", "Target", "Run"} <= set(wide)
    ready = next(c for c in PRINTER_COLUMNS if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_a_completed_run_without_a_usable_winner_is_degraded() -> None:
    no_winner = run_results({**RESULTS["selection"], "winner": None, "winner_target": None,
                             "outcome": "no-variant-passed", "message": "no variant passed: accuracy drop above 1%"})
    gate = build_status({}, Decision("Succeeded", "Completed", "ok"), 1, "s3://r", T0, no_winner, None,
                        promotion_configured=False)
    assert degraded(gate) == ("GateFailed", "no variant passed: accuracy drop above 1%")
    unpromoted = build_status({}, Decision("Succeeded", "Completed", "ok"), 1, "s3://r", T0, run_results(),
                              PromotionOutcome(promoted=False, reason="generation 3 is already promoted"),
                              promotion_configured=True)
    assert degraded(unpromoted) == ("PromotionFailed", "generation 3 is already promoted")
    assert degraded(statuses()[0]) is None and degraded(statuses()[2]) is None  # usable; Failed has its own
