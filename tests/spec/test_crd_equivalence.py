"""The CRD accepts exactly the manifests the spec model accepts: every cross-field validator carries its CEL
twin, the CRD carries every default the model applies, and a table of valid and invalid specs gets the same
verdict from both (the API server's side is the test harness's admission: defaults, pruning, structural
validation, CEL rules, strict field validation)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from optismith.spec import ModelOptimizationSpec, SpecModel, parse_spec, validators_without_cel
from tests.spec.gates import crd_gate, operator_gate

MINIMAL: dict[str, Any] = {"model": {"uri": "s3://models/m/"}, "output": {"uri": "s3://runs/"}}


def spec(**overrides: Any) -> dict[str, Any]:
    return {**MINIMAL, **overrides}


def spec_models(root: type[BaseModel]) -> set[type[SpecModel]]:
    """Every spec model reachable from `root` through its fields."""
    found: set[type[SpecModel]] = set()
    pending: list[Any] = [root]
    while pending:
        model = pending.pop()
        if not (isinstance(model, type) and issubclass(model, SpecModel)) or model in found:
            continue
        found.add(model)
        for field in model.model_fields.values():
            annotation = field.annotation
            pending.extend([annotation, *getattr(annotation, "__args__", ())])
    return found


def test_every_cross_field_validator_has_a_cel_twin() -> None:
    models = spec_models(ModelOptimizationSpec)
    assert len(models) > 10, models
    missing = {model.__name__: validators_without_cel(model) for model in models if validators_without_cel(model)}
    assert not missing, f"model validators without @cross_field(cel=...): {missing}"


VALID = {
    "minimal: only model and output": MINIMAL,
    "int8 variants without calibration data (they are skipped at run time)": spec(variants=["tflite-int8"]),
    "selection at a swept batch size": spec(selection={"batchSize": 8}),
    "selection at a batch size swept only there": spec(selection={"batchSize": 4}, benchmark={"batchSizes": [4]}),
    "frozen graph with its inputs and outputs": spec(model={
        "uri": "m.pb", "format": "frozen-graph", "inputs": [{"name": "x", "shape": [-1, 4]}], "outputs": ["y"]}),
    "two targets": spec(targets=[{"name": "cpu"}, {"name": "gpu", "kind": "gpu"}]),
    "promotion and synthetic calibration": spec(promotion={"uri": "s3://models/m-optimized"},
                                                calibration={"synthetic": True}),
    # Quantities as Kubernetes users write them (issue 13), and every maximum exactly.
    "resources as Kubernetes quantities: an integer cpu, 500m, 1.5Gi": spec(targets=[{"name": "cpu", "resources": {
        "requests": {"cpu": 2, "memory": "1.5Gi"}, "limits": {"cpu": "500m", "ephemeral-storage": "1e10"}}}]),
    "sizes as integers and in exponent form": spec(limits={"maxModelSize": 1073741824, "maxExpandedSize": "1e9"}),
    "Go durations": spec(execution={"stageDeadline": "1h30m", "backoff": "90s", "unschedulableTimeout": "2h45m30s"},
                         benchmark={"timeBudget": "1.5s", "serverDuration": "1m30s"},
                         selection={"constraints": {"maxLatency": "500us"}}),
    "every maximum, exactly": spec(
        execution={"stageDeadline": "168h", "backoff": "7h", "unschedulableTimeout": "167h60m"},
        limits={"maxModelSize": "1Ti", "maxExpandedSize": 1099511627776},
        benchmark={"timeBudget": "1h", "serverDuration": "3600s"},
        selection={"constraints": {"maxLatency": "60m", "maxSize": "1024Gi", "maxAccuracyDrop": "100%"}},
        targets=[{"name": "cpu", "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 604800}]}]),
    "promotion next to the model, with a trailing slash": spec(promotion={"uri": "s3://models/m2/",
                                                                          "keepVersions": 5}),
}
INVALID = {
    "a batch size that is not swept": spec(selection={"batchSize": 4}),
    "a batch size the sweep no longer has": spec(benchmark={"batchSizes": [2, 16]}),
    "two targets of one name": spec(targets=[{"name": "cpu"}, {"name": "cpu", "kind": "gpu"}]),
    "the default target's name twice": spec(targets=[{"name": "cpu"}, {"name": "cpu"}]),
    "a frozen graph without inputs": spec(model={"uri": "m.pb", "format": "frozen-graph", "outputs": ["y"]}),
    "a checkpoint without outputs": spec(model={"uri": "m.meta", "format": "checkpoint",
                                                "inputs": [{"name": "x", "shape": [-1, 4]}]}),
    "no output": {"model": {"uri": "s3://models/m/"}},
    "an unknown variant": spec(variants=["tflite-int4"]),
    "a batch size of 0": spec(benchmark={"batchSizes": [0]}),
    "a percentage without %": spec(selection={"constraints": {"maxAccuracyDrop": "0.01"}}),
    "a number where a duration goes": spec(benchmark={"timeBudget": 3}),
    "a string where an integer goes": spec(benchmark={"minRounds": "15"}),
    "a misspelled field": spec(benchmark={"batchSizez": [1]}),
    "a target name that is no DNS label": spec(targets=[{"name": "Not_DNS"}]),
    # Values that pass a pattern but overflow, and every maximum plus a little (issue 10).
    "a stage deadline of 400 digits": spec(execution={"stageDeadline": "9" * 400 + "h"}),
    "a backoff of 400 digits": spec(execution={"backoff": "9" * 400 + "s"}),
    "a model size of 400 digits": spec(limits={"maxModelSize": "9" * 400}),
    "an expanded size of 400 digits": spec(limits={"maxExpandedSize": "9" * 400 + "Gi"}),
    "a stage deadline that overflows a 64-bit duration": spec(execution={"stageDeadline": "99999999999999999999h"}),
    "a size that overflows a 64-bit quantity": spec(limits={"maxModelSize": "99999999999999999999Ei"}),
    "a stage deadline over 7 days": spec(execution={"stageDeadline": "169h"}),
    "an unschedulable timeout over 7 days in two units": spec(execution={"unschedulableTimeout": "167h61m"}),
    "a time budget over 1 hour": spec(benchmark={"timeBudget": "61m"}),
    "a latency bound over 1 hour": spec(selection={"constraints": {"maxLatency": "3601s"}}),
    "a model size over 1Ti": spec(limits={"maxModelSize": "1.5Ti"}),
    "an integer size over 1Ti": spec(limits={"maxExpandedSize": 1099511627777}),
    "an artifact size over 1Ti in decimal units": spec(selection={"constraints": {"maxSize": "1100G"}}),
    "a percentage over 100%": spec(selection={"constraints": {"maxAccuracyDrop": "101%"}}),
    "a toleration over 7 days": spec(targets=[{"name": "cpu", "tolerations": [{"tolerationSeconds": 604801}]}]),
    "a duration in days (not a Go unit)": spec(execution={"stageDeadline": "1d"}),
    "a duration without a unit": spec(execution={"backoff": "90"}),
    "a float cpu (Kubernetes forbids floats)": spec(targets=[{"name": "cpu", "resources": {"requests": {"cpu": 0.5}}}]),
    "a negative memory": spec(targets=[{"name": "cpu", "resources": {"limits": {"memory": "-1Gi"}}}]),
    "a quantity with a bare K (Kubernetes writes k or Ki)": spec(limits={"maxModelSize": "10K"}),
    "promotion inside the model": spec(promotion={"uri": "s3://models/m/optimized"}),
    "promotion equal to the model without its slash": spec(promotion={"uri": "s3://models/m"}),
    "the promotion equal to the output root": spec(promotion={"uri": MINIMAL["output"]["uri"].rsplit("/", 1)[0]}),
    "promotion into a run directory": spec(promotion={"uri": "s3://elsewhere/runs/ml/x/gen-4/promoted"}),
    "keeping no version": spec(promotion={"uri": "s3://models/m-optimized", "keepVersions": 0}),
}


@pytest.mark.parametrize("document", list(VALID.values()), ids=list(VALID))
def test_valid_specs_pass_both_gates(document: dict[str, Any]) -> None:
    stored, causes = crd_gate(document)
    assert causes == [], causes
    assert operator_gate(document) is None
    # What the API server stored (its defaults applied) means the same to the model as what was written.
    assert parse_spec(stored) == parse_spec(document)


@pytest.mark.parametrize("document", list(INVALID.values()), ids=list(INVALID))
def test_invalid_specs_fail_both_gates(document: dict[str, Any]) -> None:
    _, causes = crd_gate(document)
    assert causes, "the CRD accepts it"
    assert operator_gate(document) is not None, "the spec model accepts it"


OVER_THE_MAXIMUM = {
    "a stage deadline over 7 days": "must be at most 168h (7 days)",
    "an unschedulable timeout over 7 days in two units": "must be at most 168h (7 days)",
    "a time budget over 1 hour": "must be at most 1h (1 hour)",
    "a latency bound over 1 hour": "must be at most 1h (1 hour)",
    "a model size over 1Ti": "must be at most 1Ti",
    "an artifact size over 1Ti in decimal units": "must be at most 1Ti",
    "a size that overflows a 64-bit quantity": "must be at most 1Ti",
}


@pytest.mark.parametrize("case", list(OVER_THE_MAXIMUM))
def test_a_value_over_its_maximum_is_refused_by_the_same_rule_in_both_gates(case: str) -> None:
    """Well-formed and short, so only the maximum refuses it: the CRD's CEL rule and the model's validator."""
    _, causes = crd_gate(INVALID[case])
    assert any(OVER_THE_MAXIMUM[case] in message for _, message in causes), causes
    assert OVER_THE_MAXIMUM[case] in (operator_gate(INVALID[case]) or "")
