"""Fault injection and the request history."""

from __future__ import annotations

import time

import pytest

from tests.harness import ApiServer
from tests.harness.client import resource_path
from tests.harness_tests.harness_samples import JOBS, job

pytestmark = pytest.mark.timeout(60)

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def test_next_n_matching_requests_fail_before_processing(k8s_api: ApiServer) -> None:
    fault = k8s_api.faults.inject(status=500, times=2, verb="create", resource="configmaps")
    statuses = [k8s_api.client.request("POST", CONFIGMAPS, {"metadata": {"name": f"c{i}"}}).status for i in range(3)]
    assert statuses == [500, 500, 201]
    assert fault.hits == 2 and fault.exhausted
    assert [c["metadata"]["name"] for c in k8s_api.client.get(CONFIGMAPS)["items"]] == ["c2"]
    assert k8s_api.client.request("GET", CONFIGMAPS).status == 200  # other verbs are unaffected


def test_fault_after_processing_commits_but_reports_an_error(k8s_api: ApiServer) -> None:
    k8s_api.faults.inject(status=504, phase="after", verb="create", resource="configmaps")
    first = k8s_api.client.request("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    retried = k8s_api.client.request("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    assert first.status == 504 and first.data["kind"] == "Status"
    assert (retried.status, retried.data["reason"]) == (409, "AlreadyExists")


def test_conflicts_by_predicate_with_retry_after(k8s_api: ApiServer) -> None:
    k8s_api.faults.inject(lambda r: r.method == "PATCH" and r.name == "target", status=409, times=None)
    k8s_api.faults.inject(status=429, retry_after=3, resource="secrets")
    k8s_api.client.create(CONFIGMAPS, {"metadata": {"name": "target"}})
    k8s_api.client.create(CONFIGMAPS, {"metadata": {"name": "other"}})
    assert (
        k8s_api.client.request(
            "PATCH", f"{CONFIGMAPS}/target", {"data": {}}, content_type="application/merge-patch+json"
        ).status
        == 409
    )
    assert (
        k8s_api.client.request(
            "PATCH", f"{CONFIGMAPS}/other", {"data": {}}, content_type="application/merge-patch+json"
        ).status
        == 200
    )
    throttled = k8s_api.client.request("GET", "/api/v1/namespaces/default/secrets")
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "3"
    k8s_api.faults.clear()
    assert (
        k8s_api.client.request(
            "PATCH", f"{CONFIGMAPS}/target", {"data": {}}, content_type="application/merge-patch+json"
        ).status
        == 200
    )


def test_delay_only_faults_slow_requests_down(k8s_api: ApiServer) -> None:
    k8s_api.faults.inject(status=0, delay=0.3, times=1, verb="list")
    started = time.monotonic()
    assert k8s_api.client.request("GET", CONFIGMAPS).status == 200
    assert time.monotonic() - started >= 0.3


def test_history_records_and_queries(k8s_api: ApiServer) -> None:
    jobs = JOBS.format(ns="default")
    k8s_api.client.create(jobs, job("j1", "pass"))
    k8s_api.client.request("POST", jobs, job("j1", "pass"))  # a duplicate: 409
    k8s_api.client.create(jobs, job("j2", "pass"))
    k8s_api.client.patch(f"{jobs}/j2/status", {"status": {"active": 1}})
    k8s_api.client.get(jobs, labelSelector="a=b")
    k8s_api.client.delete(f"{jobs}/j1", {"propagationPolicy": "Background"})

    creates = k8s_api.history.creates(resource="jobs")
    assert [(r.name, r.status) for r in creates] == [("j1", 201), ("j1", 409), ("j2", 201)]
    assert k8s_api.history.duplicates(resource="jobs") == {}  # only successful creations count
    listed = k8s_api.history.lists(resource="jobs")[0]
    assert listed.query == {"labelSelector": "a=b"} and listed.namespace == "default"
    status_patch = k8s_api.history.patches(subresource="status")[0]
    assert status_patch.rbac_resource == "jobs/status" and status_patch.group == "batch"
    assert k8s_api.history.rbac_triples(user_agent="harness-test-client") == {
        ("batch", "jobs", "create"),
        ("batch", "jobs/status", "patch"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "delete"),
    }
    assert all(r.timestamp > 0 for r in k8s_api.history)


def test_duplicates_detects_recreation(k8s_api: ApiServer) -> None:
    path = resource_path("v1", "configmaps", "default")
    k8s_api.client.create(path, {"metadata": {"name": "c"}})
    k8s_api.client.delete(f"{path}/c")
    k8s_api.client.create(path, {"metadata": {"name": "c"}})
    assert k8s_api.history.duplicates(resource="configmaps") == {("default", "c"): 2}


def test_kmock_reactions_still_override(k8s_api: ApiServer) -> None:
    k8s_api.call(lambda: k8s_api.emulator["get /api/v1/namespaces/default/configmaps/magic"] << {"magic": True})
    assert k8s_api.client.get("/api/v1/namespaces/default/configmaps/magic") == {"magic": True}
    assert k8s_api.client.request("GET", "/api/v1/namespaces/default/configmaps/plain").status == 404


def test_kmock_objects_keep_version_history(k8s_api: ApiServer) -> None:
    k8s_api.client.create(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    k8s_api.client.patch(f"{CONFIGMAPS}/c", {"data": {"v": "2"}})
    k8s_api.client.delete(f"{CONFIGMAPS}/c")

    def versions() -> list[object]:
        history = k8s_api.emulator.objects["v1/configmaps", "default", "c"].history
        return [None if v is None else v["data"]["v"] for v in history]

    assert k8s_api.call(versions) == ["1", "2", None]


@pytest.mark.parametrize("status", [409, 500, 503])
def test_fault_statuses_render_kubernetes_reasons(k8s_api: ApiServer, status: int) -> None:
    k8s_api.faults.inject(status=status, verb="list")
    response = k8s_api.client.request("GET", CONFIGMAPS)
    assert response.status == status
    assert response.data["reason"] == {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}[status]
