"""A tiny kopf operator, defined here, runs end to end against the emulator and the kubelet."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.harness import ApiServer, KopfProcess, KopfThread, Kubelet, SyncClient, eventually, wait_for_watch
from tests.harness_tests.harness_samples import JOBS, WIDGETS, job, widget, widget_crd

pytestmark = pytest.mark.timeout(60)

NS = "ns1"


def demo_registry(api_url: str, calls: list[tuple[str, Any]]) -> kopf.OperatorRegistry:
    """Create -> a child Job (adopted) + status; update -> status; delete -> a finalizer-guarded handler."""
    registry = kopf.OperatorRegistry()
    client = SyncClient(api_url, user_agent="demo-operator")

    @kopf.on.create("example.io", "v1", "widgets", id="create_fn", registry=registry)
    def create_fn(body: kopf.Body, spec: kopf.Spec, namespace: str | None, **_: Any) -> dict[str, Any]:
        assert namespace is not None
        child = job(f"{body.metadata.name}-work", 'print("working")')
        kopf.adopt(child, owner=body)
        client.create(JOBS.format(ns=namespace), child)
        calls.append(("create", dict(spec)))
        return {"phase": "Created", "size": spec.get("size")}

    @kopf.on.update("example.io", "v1", "widgets", field="spec.size", id="update_fn", registry=registry)
    def update_fn(old: Any, new: Any, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("update", (old, new, body.metadata["generation"])))
        patch.status["size"] = new

    @kopf.on.delete("example.io", "v1", "widgets", id="delete_fn", registry=registry)
    def delete_fn(name: str, **_: Any) -> None:
        calls.append(("delete", name))

    return registry


@pytest.fixture
def api(k8s_api: ApiServer) -> ApiServer:
    k8s_api.register_crd(widget_crd())
    k8s_api.create_namespace(NS)
    return k8s_api


def test_operator_lifecycle_end_to_end(
    api: ApiServer, kopf_operator: Callable[..., KopfThread], kubelet: Callable[..., Kubelet]
) -> None:
    calls: list[tuple[str, Any]] = []
    kubelet()
    kopf_operator(registry=demo_registry(api.url, calls), namespaces=[NS])
    wait_for_watch(api.history, "widgets")
    path = WIDGETS.format(ns=NS)

    api.client.create(path, widget("w1", size=1))
    created = eventually(lambda: (api.client.get(f"{path}/w1").get("status") or {}).get("create_fn"))
    assert created == {"phase": "Created", "size": 1}
    owner = api.client.get(f"{path}/w1")
    assert owner["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    child = api.client.get(f"{JOBS.format(ns=NS)}/w1-work")
    [ref] = child["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("Widget", owner["metadata"]["uid"], True)
    eventually(lambda: api.client.get(f"{JOBS.format(ns=NS)}/w1-work").get("status", {}).get("succeeded"))

    api.client.patch(f"{path}/w1", {"spec": {"size": 2}})
    eventually(lambda: api.client.get(f"{path}/w1").get("status", {}).get("size") == 2)
    assert ("update", (1, 2, 2)) in calls

    api.client.delete(f"{path}/w1")
    eventually(lambda: api.client.request("GET", f"{path}/w1").status == 404)
    assert ("delete", "w1") in calls
    assert api.client.request("GET", f"{JOBS.format(ns=NS)}/w1-work").status == 404
    assert api.client.get(f"/api/v1/namespaces/{NS}/pods")["items"] == []
    assert [c[0] for c in calls].count("create") == 1
    assert api.history.duplicates(resource="jobs") == {}
    assert api.history.filter(user_agent="kopf", succeeded=False) == []
    assert ("example.io", "widgets/status", "patch") in api.history.rbac_triples(user_agent="kopf")


OPERATOR_MODULE = """
import kopf

@kopf.on.create('example.io', 'v1', 'widgets')
def create_fn(spec, **_):
    return {'seen': spec.get('size')}
"""


def test_operator_subprocess_survives_kill_9(
    api: ApiServer, kopf_process: Callable[..., KopfProcess], tmp_path: Path
) -> None:
    module = tmp_path / "demo_operator.py"
    module.write_text(textwrap.dedent(OPERATOR_MODULE))
    operator = kopf_process(str(module), namespaces=[NS])
    path = WIDGETS.format(ns=NS)
    wait_for_watch(api.history, "widgets")

    api.client.create(path, widget("before", size=1))
    eventually(lambda: api.client.get(f"{path}/before").get("status", {}).get("create_fn"), timeout=15)
    operator.kill()
    assert not operator.alive
    api.client.create(path, widget("during", size=2))
    operator.restart()
    assert eventually(lambda: api.client.get(f"{path}/during").get("status", {}).get("create_fn"), timeout=15) == {
        "seen": 2
    }
    patches = api.history.patches(name="before", subresource="status", user_agent="kopf", succeeded=True)
    assert len(patches) == 1  # the restarted operator did not handle the old object again
    assert "Creation is processed" in operator.logs()
