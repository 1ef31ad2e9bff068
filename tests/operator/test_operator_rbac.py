"""The chart's RBAC rules are exactly what the operator uses: every rule is exercised by a run that walks
each operator path (create, status, events, retries, supersede, invalid spec, deletion), and every
request the operator made is allowed by a rule. Removing a rule or adding an unused one fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.harness import eventually
from tests.operator.cluster import Cluster, fake_spec

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.operator

OPERATOR_AGENTS = ("kopf", "OpenAPI-Generator")  # kopf itself, and the official client in controller/client.py


def chart_rules() -> set[tuple[str, str, str]]:
    rules = yaml.safe_load((ROOT / "charts" / "optismith" / "files" / "rbac.yaml").read_text())
    return {
        (group, resource, verb)
        for rule in [*rules["clusterScoped"], *rules["namespaced"]]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_rules_match_the_calls_the_operator_makes(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("good", fake_spec(shared_dir, promotion={"uri": str(shared_dir / "promoted")}))
    cluster.create("flaky", fake_spec(shared_dir, model="flaky-prepare"))
    cluster.create("bad", fake_spec(shared_dir, targets=[{"name": "cpu\n"}]))  # refused by the spec model
    cluster.create("changing", fake_spec(shared_dir, model="sleep-3"))
    eventually(lambda: cluster.jobs("changing"), timeout=30)
    path = cluster.api.path("modeloptimizations", cluster.namespace, "changing")
    cluster.api.client.patch(path, {"spec": {"model": {"uri": "/fake/ok/model"}}})

    def done(name: str) -> bool:
        condition = cluster.condition(name, "Succeeded")
        return bool(
            condition
            and condition["status"] != "Unknown"
            and (cluster.resource(name) or {}).get("status", {}).get("observedGeneration")
            == (cluster.resource(name) or {}).get("metadata", {}).get("generation")
        )

    eventually(lambda: all(done(n) for n in ("good", "flaky", "bad", "changing")), timeout=90)
    cluster.api.kubectl("delete", "mo", "good", "-n", cluster.namespace, "--wait=true", "--timeout=30s")

    used: set[tuple[str, str, str]] = set()
    for agent in OPERATOR_AGENTS:
        used |= cluster.api.history.rbac_triples(user_agent=agent)
    granted = chart_rules()
    assert used - granted == set(), f"the operator needs rules the chart does not grant: {sorted(used - granted)}"
    assert granted - used == set(), f"the chart grants rules the operator never used: {sorted(granted - used)}"
