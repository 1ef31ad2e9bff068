"""Bad specs. Hypothesis mutates a valid spec (wrong types, out-of-range numbers, broken patterns, unknown
fields, missing fields, huge lists, unicode) and checks the two gates a spec meets:

* the CRD schema, as the API server applies it (defaulting, pruning, structural validation, and strict
  field validation, which `kubectl apply` asks for by default, for unknown fields);
* the spec model (`parse_spec`), which the operator runs on what the server stored.

Every mutation must be rejected by the schema, or by the spec model with a message naming the field, or be
valid; and the spec model must never accept what the schema rejects (the CLI and the cluster agree).
Then a handful of specs that pass the schema but not the spec model are applied to the operator: each one
is Stalled with the field named, while a valid resource next to them succeeds.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import eventually
from tests.operator.cluster import CRD, Cluster, fake_spec
from tests.reliability.reliability_kit import (
    CaseLedger,
    assert_no_orphaned_or_duplicated_jobs,
    stalled,
    succeeded,
)
from tests.spec.gates import CEL_CAUSE, crd_gate, operator_gate

EXAMPLES = 1000

# Every field set, so every field can be mutated.
VALID: dict[str, Any] = {
    "model": {
        "uri": "s3://models/digits/",
        "format": "savedmodel",
        "signature": "serving_default",
        "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 8, 8, 1]}],
        "outputs": ["probabilities"],
    },
    "storage": {
        "endpoint": "http://minio:9000",
        "region": "us-east-1",
        "pathStyle": True,
        "credentialsSecret": {
            "name": "s3-creds",
            "accessKeyIdKey": "AWS_ACCESS_KEY_ID",
            "secretAccessKeyKey": "AWS_SECRET_ACCESS_KEY",
        },
    },
    "optimize": {"passes": ["constfold", "remapper"], "maxAbsError": "1e-3"},
    "variants": ["tf-savedmodel", "tflite-int8", "onnx-fp32"],
    "calibration": {"uri": "s3://data/calibration.npz", "samples": 200, "synthetic": False},
    "evaluation": {"uri": "s3://data/eval.npz", "metric": "top1", "samples": 2000},
    "benchmark": {
        "batchSizes": [1, 8],
        "threads": [1, 2],
        "warmupRuns": 5,
        "minRounds": 15,
        "timeBudget": "3s",
        "stability": "5%",
        "scenarios": ["singleStream", "offline", "server"],
        "serverQps": 100,
        "serverDuration": "2s",
    },
    "selection": {
        "objective": "latencyP50",
        "batchSize": 1,
        "constraints": {"maxAccuracyDrop": "1%", "maxLatency": "10ms", "maxSize": "50Mi"},
    },
    "output": {"uri": "s3://runs/"},
    "promotion": {"uri": "s3://promoted/digits"},
    "targets": [
        {
            "name": "cpu",
            "kind": "cpu",
            "image": "worker:1",
            "gpus": 0,
            "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}},
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [
                {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 30}
            ],
        }
    ],
    "execution": {"maxAttempts": 3, "backoff": "10s", "stageDeadline": "1h", "unschedulableTimeout": "5m"},
    "limits": {"maxModelSize": "4Gi", "maxExpandedSize": "8Gi", "maxArchiveEntries": 100000},
    "security": {"allowOps": ["WriteFile"]},
}

Path_ = tuple[str | int, ...]


def walk(node: Any, path: Path_ = ()) -> list[tuple[Path_, Any]]:
    found = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            found += walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += walk(value, (*path, index))
    return found


NODES = walk(VALID)[1:]
ALL_PATHS = [p for p, _ in NODES]
INT_PATHS = [p for p, v in NODES if isinstance(v, int) and not isinstance(v, bool)]
STR_PATHS = [p for p, v in NODES if isinstance(v, str)]
DICT_PATHS = [(), *(p for p, v in NODES if isinstance(v, dict))]
KEY_PATHS = [p for p in ALL_PATHS if isinstance(p[-1], str)]
LIST_PATHS = [p for p, v in NODES if isinstance(v, list) and v]
LEAF_PATHS = [p for p, v in NODES if not isinstance(v, dict | list)]


# Edits that keep every field well-formed but break a rule across fields.
CROSS_FIELD: list[Path_] = [
    ("selection", "batchSize"),
    ("benchmark", "batchSizes"),
    ("model", "inputs"),
    ("calibration", "uri"),
    ("targets",),
]
VARIANTS = ["tf-savedmodel", "tf-frozen", "tflite-fp32", "tflite-int8", "onnx-int8", "tftrt-int8"]


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def parent_of(spec: dict[str, Any], path: Path_) -> Any:
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    return node


def lookalikes(value: Any) -> list[Any]:
    """The same value in another JSON type, as YAML or a template easily produces: lax parsers accept them."""
    if isinstance(value, bool):
        return [str(value).lower(), int(value), "yes" if value else "no", [value]]
    if isinstance(value, int):
        return [str(value), float(value), value + 0.5, bool(value), [value], {"value": value}]
    return [[value], {"value": value}, 1, True, 1.5, value.encode().hex()]


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)
bad_strings = st.sampled_from(
    [
        "",
        " ",
        "1 %",
        "-1s",
        "5",
        "1e3%",
        "10 ms",
        "fast",
        "s3://",
        "gs://bucket/x",
        "a" * 5000,
        "x\n",
        "NaN",
        "0x10",
        "1.5.5",
        "1Mb",
        "ünïcødé",
        "∞ms",
        "١٢٣",
        "cpu.",
        "-cpu",
        "CPU",
        "tf-savedmodel ",
    ]
)
unicode_text = st.text(
    st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), min_size=1, max_size=300
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Path_, dict[str, Any]]:
    spec = copy.deepcopy(VALID)
    kind = draw(
        st.sampled_from(
            ["type", "lookalike", "number", "string", "unicode", "unknown", "delete", "huge-list", "cross-field"]
        )
    )
    if kind == "cross-field":
        path = draw(st.sampled_from(CROSS_FIELD))
        if path == ("selection", "batchSize"):
            spec["selection"]["batchSize"] = draw(st.integers(1, 4096))
        elif path == ("benchmark", "batchSizes"):
            spec["benchmark"]["batchSizes"] = draw(st.lists(st.integers(1, 4096), min_size=1, max_size=8))
        elif path == ("model", "inputs"):
            spec["model"]["format"] = draw(st.sampled_from(["frozen-graph", "checkpoint"]))
            del spec["model"][draw(st.sampled_from(["inputs", "outputs"]))]
        elif path == ("calibration", "uri"):
            del spec["calibration"]["uri"]
            spec["variants"] = draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=6))
        else:
            spec["targets"] = spec["targets"] * draw(st.integers(2, 8))
    elif kind == "lookalike":
        path = draw(st.sampled_from(LEAF_PATHS))
        parent_of(spec, path)[path[-1]] = draw(st.sampled_from(lookalikes(parent_of(spec, path)[path[-1]])))
    elif kind == "type":
        path = draw(st.sampled_from(ALL_PATHS))
        parent_of(spec, path)[path[-1]] = draw(junk)
    elif kind == "number":
        path = draw(st.sampled_from(INT_PATHS))
        parent_of(spec, path)[path[-1]] = draw(
            st.sampled_from([-2, -1, 0, 4097, 10**7, 10**12]) | st.integers(-(2**31), 2**31)
        )
    elif kind in ("string", "unicode"):
        path = draw(st.sampled_from(STR_PATHS))
        parent_of(spec, path)[path[-1]] = draw(bad_strings | st.text(max_size=60) if kind == "string" else unicode_text)
    elif kind == "unknown":
        base = draw(st.sampled_from(DICT_PATHS))
        node = parent_of(spec, (*base, "")) if base else spec
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in node))
        node[key] = draw(junk)
        path = (*base, key)
    elif kind == "delete":
        path = draw(st.sampled_from(KEY_PATHS))
        del parent_of(spec, path)[path[-1]]
    else:
        path = draw(st.sampled_from(LIST_PATHS))
        items = parent_of(spec, path)[path[-1]]
        parent_of(spec, path)[path[-1]] = [items[0]] * draw(
            st.sampled_from([2, 3, 9, 17, 33, 65, 400]) | st.integers(2, 400)
        )
    return kind, path, spec


def names_field(message: str, path: Path_) -> bool:
    """The message points at the mutated field: its full path, or (for rules across fields) its name."""
    if f"spec.{dotted(path)}" in message:
        return True
    keys = [p for p in path if isinstance(p, str)]
    return any(".".join(keys[i:]) in message for i in range(len(keys)))


def test_the_valid_spec_passes_both_gates() -> None:
    stored, causes = crd_gate(VALID)
    assert causes == []
    assert operator_gate(VALID) is None and operator_gate(stored) is None


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutations())
def test_every_mutated_spec_is_rejected_with_its_field_named_or_valid(
    mutation: tuple[str, Path_, dict[str, Any]], session_ledger: Any
) -> None:
    kind, path, spec = mutation
    stored, causes = crd_gate(spec)
    accepted_as_written = operator_gate(spec) is None
    assert not (accepted_as_written and causes), (
        f"the spec model accepts {dotted(path)} but the CRD schema rejects it: {causes}"
    )
    if causes:
        # A field's own checks name the field; a CEL rule across fields names the field it is about.
        where = f"spec.{dotted(path)}"
        problems = [p for p, message in causes if not message.startswith(CEL_CAUSE)]
        assert all(p == where or p.startswith((where + ".", where + "[")) for p in problems), (kind, where, causes)
        session_ledger.bad_inputs["spec mutations rejected by the CRD schema"] += 1
        return
    message = operator_gate(stored)
    if message is None:
        session_ledger.bad_inputs["spec mutations that stayed valid (not counted as bad)"] += 1
        return
    assert names_field(message, path), (kind, dotted(path), message)
    assert "Fix:" in message
    session_ledger.bad_inputs["spec mutations rejected by the spec model (Stalled, field named)"] += 1


INVALID_BUT_SCHEMA_VALID = {
    # Python's `$` (the emulator's) matches before a trailing newline, Go's and Rust's do not: the spec model
    # still refuses.
    # (Every cross-field rule has a CEL twin the API server enforces: tests/spec/test_crd_equivalence.py.)
    "newline": ({"targets": [{"name": "cpu\n"}]}, "spec.targets[0].name"),
}


@pytest.mark.operator
@pytest.mark.slow
def test_invalid_specs_are_stalled_with_the_field_named_while_others_are_served(
    cluster: Cluster, shared_dir: Path, ledger: CaseLedger
) -> None:
    cluster.start_kubelet()
    operator = cluster.start_operator()
    for name, (overrides, _) in INVALID_BUT_SCHEMA_VALID.items():
        cluster.create(name, {**fake_spec(shared_dir), **overrides})
    cluster.create("valid", fake_spec(shared_dir))
    ledger.bad_input("schema-valid specs the operator must refuse", len(INVALID_BUT_SCHEMA_VALID))
    for name, (_, needle) in INVALID_BUT_SCHEMA_VALID.items():
        condition = eventually(lambda: stalled(cluster, name), timeout=30, message=lambda: str(cluster.resource(name)))
        assert condition["reason"] == "InvalidSpec", condition
        assert needle in condition["message"], (name, condition["message"])
        assert not cluster.jobs(name)
    eventually(lambda: succeeded(cluster, "valid"), timeout=60, message=lambda: str(cluster.resource("valid")))
    # Fixing the spec is enough: the next generation runs.
    path = cluster.api.path("modeloptimizations", cluster.namespace, "newline")
    cluster.api.client.patch(path, {"spec": {"targets": [{"name": "cpu"}]}})
    eventually(lambda: succeeded(cluster, "newline"), timeout=60, message=lambda: str(cluster.resource("newline")))
    events = [e for e in cluster.api.list("events", cluster.namespace) if e.get("reason") == "InvalidSpec"]
    assert {e["involvedObject"]["name"] for e in events} == set(INVALID_BUT_SCHEMA_VALID)
    assert "Traceback" not in operator.logs()
    assert_no_orphaned_or_duplicated_jobs(cluster)


# Values that pass an older CRD's pattern but overflow (issue 10): the spec model refuses them, so the operator
# marks the resource InvalidSpec once instead of looping on OverflowError tracebacks.
OVERFLOWING = {
    "deadline": ({"execution": {"stageDeadline": "9" * 400 + "h"}}, "spec.execution.stageDeadline"),
    "backoff": ({"execution": {"backoff": "9" * 400 + "s", "maxAttempts": 2}}, "spec.execution.backoff"),
    "model-size": ({"limits": {"maxModelSize": "9" * 400}}, "spec.limits.maxModelSize"),
    "expanded-size": ({"limits": {"maxExpandedSize": "9" * 400 + "Gi"}}, "spec.limits.maxExpandedSize"),
}


def older_crd() -> dict[str, Any]:
    """The CRD as a release without maxima had it: the patterns only (no length caps, no CEL rules)."""
    crd = copy.deepcopy(CRD)

    def loosen(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("maxLength", None)
            node.pop("x-kubernetes-validations", None)
            if node.get("x-kubernetes-int-or-string"):
                node.pop("maximum", None)
            for value in node.values():
                loosen(value)
        elif isinstance(node, list):
            for value in node:
                loosen(value)

    loosen(crd)
    return crd


@pytest.mark.operator
@pytest.mark.slow
def test_overflowing_specs_stored_under_an_older_crd_are_invalid_not_retried(
    cluster: Cluster, shared_dir: Path, ledger: CaseLedger
) -> None:
    cluster.api.register_crd(older_crd())
    cluster.start_kubelet()
    operator = cluster.start_operator()
    for name, (overrides, _) in OVERFLOWING.items():
        merged = {key: {**fake_spec(shared_dir).get(key, {}), **value} for key, value in overrides.items()}
        cluster.create(name, {**fake_spec(shared_dir), **merged})
    cluster.create("valid", fake_spec(shared_dir))
    ledger.bad_input("overflowing specs under an older CRD", len(OVERFLOWING))
    for name, (_, needle) in OVERFLOWING.items():
        condition = eventually(lambda: stalled(cluster, name), timeout=30, message=lambda: str(cluster.resource(name)))
        assert condition["reason"] == "InvalidSpec" and needle in condition["message"], condition
        assert not cluster.jobs(name)
    eventually(lambda: succeeded(cluster, "valid"), timeout=60, message=lambda: str(cluster.resource("valid")))
    logs = operator.logs()
    assert "Traceback" not in logs and "OverflowError" not in logs


def test_crd_gate_models_strict_field_validation() -> None:
    spec = json.loads(json.dumps(VALID))
    spec["benchmark"]["thredas"] = [2]
    _, causes = crd_gate(spec)
    assert [where for where, _ in causes] == ["spec.benchmark.thredas"]
    assert re.search(r"spec\.benchmark\.thredas: unknown field", operator_gate(spec) or "")
