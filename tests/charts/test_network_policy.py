"""The worker NetworkPolicy: rendered per namespace with Helm's Go SDK, strictly valid for Kubernetes 1.30,
selecting exactly the pods of the operator's Jobs, and allowing egress to DNS and the object store only."""

from __future__ import annotations

import ipaddress
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from optismith.controller.specs import WorkerDefaults, build_job
from optismith.pipeline.plan import JobStep
from optismith.spec import parse_spec
from tests.charts.test_chart import CHART, KUBE_VERSION, NAMESPACE, RELEASE, render

STORE = {"cidrs": ["10.0.64.0/20"], "ports": [443, 8333],
         "selectors": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}},
                        "podSelector": {"matchLabels": {"app": "seaweedfs"}}}]}
VALUES: dict[str, Any] = {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["team-a", "team-b"],
                          "workerNetworkPolicy": {"objectStore": STORE}}
METADATA = ipaddress.ip_address("169.254.169.254")


@pytest.fixture(scope="module")
def chart() -> Any:
    loaded = helm.Chart.load(CHART)
    yield loaded
    loaded.close()


def policies(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in render(chart, values) if d["kind"] == "NetworkPolicy"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "Exists", expression
        if expression["key"] not in labels:
            return False
    return True


def _worker_pod_labels(step: JobStep) -> dict[str, str]:
    spec = parse_spec({"model": {"uri": "s3://models/m/"}, "output": {"uri": "s3://runs/o"},
                       "promotion": {"uri": "s3://models/prod"}})
    body = {"metadata": {"name": "m", "namespace": "team-a", "generation": 1}, "spec": {}}
    labels: dict[str, str] = build_job(body, spec, step, 1, WorkerDefaults())["spec"]["template"]["metadata"]["labels"]
    return labels


def test_one_strictly_valid_policy_per_watched_namespace(chart: Any) -> None:
    found = policies(chart, VALUES)
    assert sorted(p["metadata"]["namespace"] for p in found) == ["team-a", "team-b"]
    for policy in found:
        kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)
    explicit = policies(chart, {**VALUES, "workerNetworkPolicy": {"objectStore": STORE, "namespaces": ["ml"]}})
    assert [p["metadata"]["namespace"] for p in explicit] == ["ml"]


def test_it_selects_every_worker_pod_and_not_the_operator(chart: Any) -> None:
    [policy, _] = policies(chart, VALUES)
    selector = policy["spec"]["podSelector"]
    for step in (JobStep("prepare"), JobStep("measure", "cpu"), JobStep("finalize"), JobStep("promote")):
        assert _selects(selector, _worker_pod_labels(step)), step
    operator = next(d for d in render(chart, VALUES) if d["kind"] == "Deployment")
    assert not _selects(selector, operator["spec"]["template"]["metadata"]["labels"])


def test_no_ingress_and_egress_only_to_dns_and_the_object_store(chart: Any) -> None:
    [policy, _] = policies(chart, VALUES)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    dns, store = spec["egress"]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert store["to"] == [{"ipBlock": {"cidr": "10.0.64.0/20"}}, *STORE["selectors"]]
    assert [p["port"] for p in store["ports"]] == [443, 8333]
    assert all(p["protocol"] == "TCP" for p in store["ports"])


def test_an_open_cidr_still_excludes_the_metadata_service(chart: Any) -> None:
    values = {**VALUES, "workerNetworkPolicy": {"objectStore": {"cidrs": ["0.0.0.0/0"]}}}
    for policy in policies(chart, values):
        kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)
        [block] = [t["ipBlock"] for rule in policy["spec"]["egress"] for t in rule["to"] if "ipBlock" in t]
        allowed = ipaddress.ip_network(block["cidr"])
        excluded = [ipaddress.ip_network(c) for c in block["except"]]
        assert METADATA in allowed and any(METADATA in net for net in excluded)


def test_no_object_store_configured_is_an_error_not_an_open_policy(chart: Any) -> None:
    with pytest.raises(Exception, match="objectStore"):
        chart.render({"rbac": {"scope": "namespaced"}, "watchNamespaces": ["team-a"]}, name=RELEASE,
                      namespace=NAMESPACE)
    disabled = {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["team-a"],
                "workerNetworkPolicy": {"enabled": False}}
    assert policies(chart, disabled) == []
    assert policies(chart, {}) == []  # cluster-wide without namespaces: docs/install.md says what to apply


@pytest.mark.parametrize(("values", "error"), [
    ({"workerNetworkPolicy": {"objectStore": {"cidrs": ["10.0.0.0"]}}}, "cidrs"),
    ({"workerNetworkPolicy": {"objectStore": {"ports": [0]}}}, "ports"),
    ({"workerNetworkPolicy": {"egress": []}}, "egress"),
])
def test_values_schema_rejects_bad_policy_values(chart: Any, values: dict[str, Any], error: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=error):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
