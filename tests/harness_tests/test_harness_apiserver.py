"""The emulator's API semantics, over HTTP, as clients see them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import ApiServer, ApiStatusError
from tests.harness.client import JSON_PATCH, MERGE_PATCH
from tests.harness_tests.harness_samples import JOBS, PODS, WIDGETS, job, widget, widget_crd

pytestmark = pytest.mark.timeout(60)

STRATEGIC = "application/strategic-merge-patch+json"


@pytest.fixture
def api(k8s_api: ApiServer) -> ApiServer:
    k8s_api.register_crd(widget_crd())
    k8s_api.create_namespace("ns1")
    return k8s_api


def w_path(name: str | None = None, ns: str = "ns1", sub: str | None = None) -> str:
    path = WIDGETS.format(ns=ns)
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def test_namespaces_are_a_cluster_scoped_list(k8s_api: ApiServer) -> None:
    k8s_api.create_namespace("extra")
    listing = k8s_api.client.get("/api/v1/namespaces")
    names = [item["metadata"]["name"] for item in listing["items"]]
    assert listing["kind"] == "NamespaceList"
    assert {"default", "kube-system", "extra"} <= set(names)
    ns = k8s_api.client.get("/api/v1/namespaces/extra")
    assert ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "extra"}


def test_create_fills_server_fields_from_the_url(api: ApiServer) -> None:
    obj = api.client.create(w_path(), {"metadata": {"name": "w1"}, "spec": {"size": 1}})
    meta = obj["metadata"]
    assert obj["apiVersion"] == "example.io/v1" and obj["kind"] == "Widget"
    assert meta["namespace"] == "ns1"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert api.client.get(w_path("w1")) == obj


def test_create_rejects_mismatched_namespace_and_missing_namespace(api: ApiServer) -> None:
    with pytest.raises(ApiStatusError) as bad:
        api.client.create(w_path(), widget("w1", namespace="other"))
    assert bad.value.status == 400
    with pytest.raises(ApiStatusError) as missing:
        api.client.create(w_path(ns="nowhere"), widget("w1"))
    assert missing.value.status == 404 and missing.value.body["details"]["kind"] == "namespaces"


def test_generate_name(api: ApiServer) -> None:
    obj = api.client.create(w_path(), {"metadata": {"generateName": "w-"}})
    assert obj["metadata"]["name"].startswith("w-") and len(obj["metadata"]["name"]) == 7


def test_generation_and_resource_version_rules(api: ApiServer) -> None:
    created = api.client.create(w_path(), widget("w1", size=1))
    rv0 = int(created["metadata"]["resourceVersion"])
    labelled = api.client.patch(w_path("w1"), {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    status = api.client.patch(w_path("w1", sub="status"), {"status": {"phase": "Running"}})
    assert status["metadata"]["generation"] == 1
    changed = api.client.patch(w_path("w1"), {"spec": {"size": 2}})
    assert changed["metadata"]["generation"] == 2
    rvs = [int(o["metadata"]["resourceVersion"]) for o in (labelled, status, changed)]
    assert rv0 < rvs[0] < rvs[1] < rvs[2]
    noop = api.client.patch(w_path("w1"), {"spec": {"size": 2}})
    assert noop["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


def test_status_is_a_separate_subresource(api: ApiServer) -> None:
    api.client.create(w_path(), {**widget("w1", size=1), "status": {"phase": "Ignored"}})
    assert "status" not in api.client.get(w_path("w1"))
    main = api.client.patch(w_path("w1"), {"spec": {"size": 2}, "status": {"phase": "Ignored"}})
    assert "status" not in main and main["spec"] == {"size": 2}
    via_status = api.client.patch(w_path("w1", sub="status"), {"spec": {"size": 9}, "status": {"phase": "Ok"}})
    assert via_status["status"] == {"phase": "Ok"} and via_status["spec"] == {"size": 2}
    current = api.client.get(w_path("w1"))
    current["status"] = {"phase": "Replaced"}
    put = api.client.replace(w_path("w1", sub="status"), current)
    assert put["status"] == {"phase": "Replaced"}


def test_without_status_subresource_status_is_plain_data(k8s_api: ApiServer) -> None:
    k8s_api.register_crd(widget_crd(status_subresource=False))
    obj = k8s_api.client.create(w_path(ns="default"), {**widget("w1"), "status": {"phase": "Kept"}})
    assert obj["status"] == {"phase": "Kept"}
    with pytest.raises(ApiStatusError) as e:
        k8s_api.client.patch(w_path("w1", ns="default", sub="status"), {"status": {}})
    assert e.value.status == 404


def test_conflicts_and_already_exists(api: ApiServer) -> None:
    created = api.client.create(w_path(), widget("w1", size=1))
    with pytest.raises(ApiStatusError) as exists:
        api.client.create(w_path(), widget("w1"))
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")
    api.client.patch(w_path("w1"), {"spec": {"size": 2}})
    stale = dict(created, spec={"size": 3})
    with pytest.raises(ApiStatusError) as put_conflict:
        api.client.replace(w_path("w1"), stale)
    assert (put_conflict.value.status, put_conflict.value.reason) == (409, "Conflict")
    with pytest.raises(ApiStatusError) as patch_conflict:
        api.client.patch(
            w_path("w1"),
            {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"size": 4}},
        )
    assert patch_conflict.value.status == 409
    assert api.client.get(w_path("w1"))["spec"] == {"size": 2}


def test_not_found_is_a_status_object(api: ApiServer) -> None:
    response = api.client.request("GET", w_path("nope"))
    assert response.status == 404
    assert response.data == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": 404,
        "reason": "NotFound",
        "message": 'widgets.example.io "nope" not found',
        "details": {"name": "nope", "group": "example.io", "kind": "widgets"},
    }
    assert api.client.request("GET", "/apis/example.io/v1/namespaces/ns1/gadgets").status == 404


def test_json_patch_test_failure_is_422_and_atomic(api: ApiServer) -> None:
    obj = api.client.create(w_path(), widget("w1", size=1))
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.io/f"]},
    ]
    patched = api.client.patch(w_path("w1"), ops, JSON_PATCH)
    assert patched["metadata"]["finalizers"] == ["example.io/f"]
    with pytest.raises(ApiStatusError) as e:  # the same ops again: the resourceVersion moved on
        api.client.patch(w_path("w1"), [*ops[:1], {"op": "replace", "path": "/spec/size", "value": 5}], JSON_PATCH)
    assert e.value.status == 422
    assert api.client.get(w_path("w1"))["spec"] == {"size": 1}


def test_merge_and_strategic_patches(api: ApiServer) -> None:
    api.client.create(w_path(), widget("w1", a=1, b={"c": 2, "d": 3}, items=[1, 2]))
    merged = api.client.patch(w_path("w1"), {"spec": {"a": None, "b": {"c": 9}, "items": [3]}}, MERGE_PATCH)
    assert merged["spec"] == {"b": {"c": 9, "d": 3}, "items": [3]}
    strategic = api.client.patch(w_path("w1"), {"spec": {"b": {"$patch": "x", "d": None}}}, STRATEGIC)
    assert strategic["spec"] == {"b": {"c": 9}, "items": [3]}
    unsupported = api.client.request("PATCH", w_path("w1"), {"spec": {}}, content_type="text/plain")
    assert unsupported.status == 415


def test_put_replaces_and_keeps_server_fields(api: ApiServer) -> None:
    obj = api.client.create(w_path(), widget("w1", a=1))
    body = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"b": 2}}
    replaced = api.client.replace(w_path("w1"), body)
    assert replaced["spec"] == {"b": 2}
    assert replaced["metadata"]["uid"] == obj["metadata"]["uid"]
    assert replaced["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]
    assert replaced["metadata"]["generation"] == 2


def test_lists_have_kind_and_resource_version_and_paginate(api: ApiServer) -> None:
    for i in range(5):
        api.client.create(w_path(), widget(f"w{i}"))
    page1 = api.client.get(w_path(), limit=2)
    assert page1["kind"] == "WidgetList" and page1["apiVersion"] == "example.io/v1"
    assert page1["metadata"]["remainingItemCount"] == 3
    page2 = api.client.get(w_path(), limit=2, **{"continue": page1["metadata"]["continue"]})
    page3 = api.client.get(w_path(), limit=2, **{"continue": page2["metadata"]["continue"]})
    names = [o["metadata"]["name"] for page in (page1, page2, page3) for o in page["items"]]
    assert names == ["w0", "w1", "w2", "w3", "w4"] and "continue" not in page3["metadata"]
    assert int(page1["metadata"]["resourceVersion"]) == api.emulator.store.rv


def test_label_and_field_selectors(api: ApiServer) -> None:
    labels = {"w1": {"app": "x", "tier": "a"}, "w2": {"app": "x", "tier": "b"}, "w3": {"app": "y"}, "w4": {}}
    for name, label_set in labels.items():
        api.client.create(w_path(), {"metadata": {"name": name, "labels": label_set}})
    api.client.patch(w_path("w2", sub="status"), {"status": {"phase": "Done"}})

    def names(**params: str) -> list[str]:
        return [o["metadata"]["name"] for o in api.client.get(w_path(), **params)["items"]]

    assert names(labelSelector="app=x") == ["w1", "w2"]
    assert names(labelSelector="app==x,tier!=a") == ["w2"]
    assert names(labelSelector="app in (x, y),!tier") == ["w3"]
    assert names(labelSelector="tier notin (a)") == ["w2", "w3", "w4"]
    assert names(labelSelector="app") == ["w1", "w2", "w3"]
    assert names(fieldSelector="metadata.name=w3") == ["w3"]
    assert names(fieldSelector="metadata.name!=w3,metadata.namespace=ns1") == ["w1", "w2", "w4"]
    assert names(fieldSelector="status.phase=Done") == ["w2"]
    assert api.client.request("GET", w_path(), params={"fieldSelector": "spec.size=1"}).status == 400


def test_finalizers_hold_deletion_until_removed(api: ApiServer) -> None:
    api.client.create(w_path(), {"metadata": {"name": "w1", "finalizers": ["example.io/f"]}})
    deleting = api.client.delete(w_path("w1"))
    assert deleting["metadata"]["deletionTimestamp"]
    assert api.client.get(w_path("w1"))["metadata"]["finalizers"] == ["example.io/f"]
    with pytest.raises(ApiStatusError) as e:
        api.client.patch(w_path("w1"), {"metadata": {"finalizers": ["example.io/f", "example.io/g"]}})
    assert e.value.status == 422
    api.client.patch(w_path("w1"), {"metadata": {"finalizers": None}})
    assert api.client.request("GET", w_path("w1")).status == 404


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_owner_references_cascade_by_uid(api: ApiServer) -> None:
    owner = api.client.create(w_path(), widget("owner"))
    other = api.client.create(w_path(), widget("other"))
    child = api.client.create(
        JOBS.format(ns="ns1"),
        {**job("child", "pass"), "metadata": {"name": "child", "ownerReferences": [owner_ref(owner)]}},
    )
    api.client.create(
        PODS.format(ns="ns1"),
        {
            "metadata": {"name": "grandchild", "ownerReferences": [owner_ref(child)]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    shared_refs = [owner_ref(owner), dict(owner_ref(other), controller=False)]
    api.client.create(w_path(), {"metadata": {"name": "shared", "ownerReferences": shared_refs}})

    api.client.delete(w_path("owner"))
    assert api.client.request("GET", JOBS.format(ns="ns1") + "/child").status == 404
    assert api.client.request("GET", PODS.format(ns="ns1") + "/grandchild").status == 404
    shared = api.client.get(w_path("shared"))  # another owner is alive: kept, minus the dangling reference
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == ["other"]


def test_jobs_orphan_pods_by_default_like_batch_v1(api: ApiServer) -> None:
    created = api.client.create(JOBS.format(ns="ns1"), job("j", "pass"))
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": created["metadata"]["uid"]}
    for name in ("p1", "p2"):
        api.client.create(
            PODS.format(ns="ns1"),
            {
                "metadata": {"name": name, "ownerReferences": [ref]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    response = api.client.request("DELETE", JOBS.format(ns="ns1") + "/j")
    assert "child pods are preserved" in response.headers["Warning"]
    orphan = api.client.get(PODS.format(ns="ns1") + "/p1")
    assert "ownerReferences" not in orphan["metadata"]


def test_foreground_deletion_waits_for_dependents(api: ApiServer) -> None:
    owner = api.client.create(w_path(), widget("owner"))
    ref = {"apiVersion": "example.io/v1", "kind": "Widget", "name": "owner", "uid": owner["metadata"]["uid"]}
    api.client.create(w_path(), {"metadata": {"name": "dep", "ownerReferences": [ref], "finalizers": ["x/y"]}})
    api.client.delete(w_path("owner"), {"propagationPolicy": "Foreground"})
    held = api.client.get(w_path("owner"))
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert api.client.get(w_path("dep"))["metadata"]["deletionTimestamp"]
    api.client.patch(w_path("dep"), {"metadata": {"finalizers": []}})
    assert api.client.request("GET", w_path("dep")).status == 404
    assert api.client.request("GET", w_path("owner")).status == 404


def test_dangling_owner_reference_is_collected(api: ApiServer) -> None:
    ghost = {
        "apiVersion": "example.io/v1",
        "kind": "Widget",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    api.client.create(w_path(), {"metadata": {"name": "orphan", "ownerReferences": [ghost]}})
    from tests.harness import eventually

    eventually(lambda: api.client.request("GET", w_path("orphan")).status == 404, timeout=3)


def test_namespace_deletion_removes_its_contents(api: ApiServer) -> None:
    api.client.create(w_path(), {"metadata": {"name": "w1", "finalizers": ["x/y"]}})
    api.client.delete("/api/v1/namespaces/ns1")
    assert api.client.get("/api/v1/namespaces/ns1")["status"]["phase"] == "Terminating"
    refused = api.client.request("POST", w_path(), widget("w2"))
    assert refused.status == 403
    api.client.patch(w_path("w1"), {"metadata": {"finalizers": None}})
    assert api.client.request("GET", "/api/v1/namespaces/ns1").status == 404


def test_crd_schema_defaults_prunes_and_validates(k8s_api: ApiServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    k8s_api.register_crd(widget_crd(schema=schema))
    obj = k8s_api.client.create(w_path(ns="default"), widget("w1", size=2, unknown=True))
    assert obj["spec"] == {"size": 2, "mode": "fast"}
    pruned = k8s_api.client.patch(
        w_path("w1", ns="default", sub="status"), {"status": {"phase": "A", "kopf": {"progress": {}}}}
    )
    assert pruned["status"] == {"phase": "A"}
    for bad in ({"size": 0}, {"size": "big"}, {"mode": "fast"}, {"size": 1, "mode": "medium"}):
        response = k8s_api.client.request("POST", w_path(ns="default"), widget("bad", **bad))
        assert response.status == 422, bad
        assert response.data["reason"] == "Invalid"


def test_builtin_admission_rules(k8s_api: ApiServer) -> None:
    bad_policy = job("j", "pass")
    bad_policy["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert k8s_api.client.request("POST", JOBS.format(ns="default"), bad_policy).status == 422
    long_label = {"metadata": {"name": "cm", "labels": {"a": "x" * 64}}}
    assert k8s_api.client.request("POST", "/api/v1/namespaces/default/configmaps", long_label).status == 422
    created = k8s_api.client.create(JOBS.format(ns="default"), job("j", "pass"))
    assert created["spec"]["backoffLimit"] == 0 and created["spec"]["completions"] == 1
    assert created["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"
    assert created["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": created["metadata"]["uid"]}
    }
    changed = dict(created, spec=dict(created["spec"], template={"spec": {}}))
    assert k8s_api.client.request("PUT", JOBS.format(ns="default") + "/j", changed).status == 422
    secret = k8s_api.client.create(
        "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    assert secret["data"] == {"k": "dg=="} and "stringData" not in secret


@pytest.mark.parametrize(
    "path", ["/api/v1/namespaces/default/events", "/apis/events.k8s.io/v1/namespaces/default/events"]
)
def test_events_can_be_created(k8s_api: ApiServer, path: str) -> None:
    event = {
        "metadata": {"generateName": "e-"},
        "reason": "Tested",
        "type": "Normal",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
    }
    created = k8s_api.client.create(path, event)
    assert created["metadata"]["name"].startswith("e-")
    assert len(k8s_api.client.get(path)["items"]) == 1


def test_discovery_documents(api: ApiServer) -> None:
    core = api.client.get("/api/v1")
    core_names = {r["name"] for r in core["resources"]}
    assert {"namespaces", "pods", "pods/status", "pods/log", "events", "secrets", "configmaps"} <= core_names
    groups = {g["name"] for g in api.client.get("/apis")["groups"]}
    assert {"batch", "coordination.k8s.io", "events.k8s.io", "example.io"} <= groups
    assert api.client.get("/api") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }
    widgets = {r["name"]: r for r in api.client.get("/apis/example.io/v1")["resources"]}
    assert widgets["widgets"]["shortNames"] == ["wd"] and widgets["widgets"]["namespaced"] is True
    assert "widgets/status" in widgets
    assert api.client.get("/apis/example.io")["preferredVersion"]["version"] == "v1"
    assert api.client.request("GET", "/apis/nowhere.io/v1").status == 404
    assert api.client.request("GET", "/openapi/v2").status == 404


def test_deleting_a_crd_unregisters_it(api: ApiServer) -> None:
    api.client.create(w_path(), widget("w1"))
    api.client.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.io")
    assert api.client.request("GET", w_path()).status == 404
    assert "example.io" not in {g["name"] for g in api.client.get("/apis")["groups"]}


def test_official_client_models_deserialize(api: ApiServer) -> None:
    import kubernetes

    api.client.create(JOBS.format(ns="ns1"), job("j", "pass"))
    api.client.create(
        "/api/v1/namespaces/ns1/events",
        {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Job", "name": "j", "namespace": "ns1"}},
    )
    config = kubernetes.client.Configuration()
    config.host = api.url
    with kubernetes.client.ApiClient(config) as client:
        jobs = kubernetes.client.BatchV1Api(client).list_namespaced_job("ns1")
        assert jobs.items[0].metadata.uid and jobs.items[0].api_version == "batch/v1"
        assert jobs.items[0].spec.template.spec.containers[0].name == "main"
        events = kubernetes.client.CoreV1Api(client).list_namespaced_event("ns1")
        assert events.items[0].involved_object.name == "j"
        crd = kubernetes.client.ApiextensionsV1Api(client).read_custom_resource_definition("widgets.example.io")
        assert crd.status.accepted_names.kind == "Widget"
        namespaces = kubernetes.client.CoreV1Api(client).list_namespace()
        assert "ns1" in {ns.metadata.name for ns in namespaces.items}
        custom = kubernetes.client.CustomObjectsApi(client)
        custom.create_namespaced_custom_object("example.io", "v1", "ns1", "widgets", widget("w9"))
        assert custom.get_namespaced_custom_object("example.io", "v1", "ns1", "widgets", "w9")["kind"] == "Widget"
