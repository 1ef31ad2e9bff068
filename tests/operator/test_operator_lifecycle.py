"""The operator against the emulated API server with a worker that skips TensorFlow: restarts, updates,
deletions, failures and retries, invalid specs, GPU scheduling and many resources at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import eventually
from tests.harness.client import ApiStatusError
from tests.operator.cluster import Cluster, fake_spec

pytestmark = pytest.mark.operator


def succeeded(cluster: Cluster, name: str) -> bool:
    condition = cluster.condition(name, "Succeeded")
    return bool(condition and condition["status"] == "True")


def test_resource_runs_to_succeeded_with_winner_and_promotion(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("digits", fake_spec(shared_dir, promotion={"uri": str(shared_dir / "promoted")}))
    eventually(lambda: succeeded(cluster, "digits"), timeout=60, message=lambda: str(cluster.resource("digits")))
    status = cluster.resource("digits")["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Succeeded": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "AccuracyGatePassed": "True",
        "Promoted": "True",
    }
    assert status["observedGeneration"] == 1
    assert status["winner"]["variant"] == "tflite-int8" and status["winner"]["speedup"] == "3.00x"
    assert status["promoted"]["uri"] == str(shared_dir / "promoted")
    assert [s["name"] for s in status["stages"]] == ["prepare", "measure-cpu", "finalize", "promote"]
    assert all(s["state"] == "succeeded" and s["attempts"] == 1 for s in status["stages"])
    jobs = cluster.jobs("digits")
    assert sorted(j["metadata"]["name"] for j in jobs) == [
        "digits-g1-finalize-a1",
        "digits-g1-measure-cpu-a1",
        "digits-g1-prepare-a1",
        "digits-g1-promote-a1",
    ]
    owner = jobs[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ModelOptimization" and owner["name"] == "digits"
    events = cluster.api.list("events", cluster.namespace)
    reasons = {e.get("reason") for e in events if (e.get("involvedObject") or {}).get("name") == "digits"}
    assert {"Running", "Succeeded"} <= reasons


def test_a_minimal_manifest_runs_to_ready(cluster: Cluster, shared_dir: Path) -> None:
    """Only model and output: the schema's defaults fill in the rest, and the run ends Ready (no promotion)."""
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("minimal", {"model": {"uri": "/fake/ok/model"}, "output": {"uri": str(shared_dir / "runs")}})
    eventually(lambda: succeeded(cluster, "minimal"), timeout=60, message=lambda: str(cluster.resource("minimal")))
    status = cluster.resource("minimal")["status"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Ready"] == ("True", "Succeeded") and conditions["Promoted"] == ("False", "NotConfigured")
    assert [s["name"] for s in status["stages"]] == ["prepare", "measure-cpu", "finalize"]
    assert status["runUri"] == str(shared_dir / "runs" / "ml" / "minimal" / "gen-1")


def test_no_variant_passing_is_stalled_with_a_warning_not_a_success_event(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("strict", fake_spec(shared_dir, model="no-winner", promotion={"uri": str(shared_dir / "promoted")}))
    eventually(lambda: succeeded(cluster, "strict"), timeout=60, message=lambda: str(cluster.resource("strict")))
    conditions = {c["type"]: (c["status"], c["reason"]) for c in cluster.resource("strict")["status"]["conditions"]}
    assert conditions["Ready"] == ("False", "GateFailed") and conditions["Stalled"][0] == "True"
    assert conditions["Reconciling"][0] == "False" and conditions["AccuracyGatePassed"] == ("False", "NoVariantPassed")

    def final_events() -> list[tuple[str, str]]:
        events = cluster.api.list("events", cluster.namespace)
        return [(e.get("type"), e.get("reason")) for e in events
                if (e.get("involvedObject") or {}).get("name") == "strict" and e.get("reason") != "Running"]

    eventually(lambda: bool(final_events()), timeout=20, message=lambda: str(final_events()))
    assert final_events() == [("Warning", "GateFailed")]


def test_operator_restarts_mid_run_never_duplicate_jobs(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    operator = cluster.start_operator()
    cluster.create("slow", fake_spec(shared_dir, model="sleep-1.5"))
    for step in (1, 2, 3):  # killed once while each of prepare, measure and finalize runs
        eventually(lambda: len(cluster.jobs("slow")) >= step, timeout=30)
        operator.kill()
        operator.restart()
    eventually(lambda: succeeded(cluster, "slow"), timeout=90, message=lambda: str(cluster.resource("slow")))
    assert not cluster.api.history.duplicates(resource="jobs")
    creates = [r for r in cluster.api.history.creates(resource="jobs") if r.status < 300]
    assert len(creates) == 3  # prepare, measure-cpu, finalize: once each across 3 restarts


def test_spec_update_mid_run_supersedes_the_old_run(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("m", fake_spec(shared_dir, model="sleep-3"))
    eventually(lambda: cluster.jobs("m"), timeout=30)
    path = cluster.api.path("modeloptimizations", cluster.namespace, "m")
    cluster.api.client.patch(path, {"spec": {"model": {"uri": "/fake/ok/model"}}})
    eventually(lambda: succeeded(cluster, "m"), timeout=60, message=lambda: str(cluster.resource("m")))
    status = cluster.resource("m")["status"]
    assert status["observedGeneration"] == 2
    names = [j["metadata"]["name"] for j in cluster.jobs("m")]
    assert names and all("-g2-" in n for n in names), names
    reasons = {e.get("reason") for e in cluster.api.list("events", cluster.namespace)}
    assert "Superseded" in reasons


def test_deletion_mid_run_cascades_to_jobs(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("gone", fake_spec(shared_dir, model="sleep-5"))
    eventually(lambda: cluster.jobs("gone"), timeout=30)
    cluster.api.kubectl("delete", "mo", "gone", "-n", cluster.namespace, "--wait=true", "--timeout=30s")
    eventually(lambda: cluster.resource("gone") is None and not cluster.jobs("gone"), timeout=30)
    assert not cluster.api.list("pods", cluster.namespace, labels="optismith.io/name=gone")


def test_failure_is_retried_then_reported_with_the_workers_reason(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    cluster.create("flaky", fake_spec(shared_dir, model="flaky-prepare"))
    cluster.create("broken", fake_spec(shared_dir, model="fail-prepare"))
    eventually(lambda: succeeded(cluster, "flaky"), timeout=60, message=lambda: str(cluster.resource("flaky")))
    prepare = cluster.resource("flaky")["status"]["stages"][0]
    assert prepare["attempts"] == 2 and prepare["state"] == "succeeded"
    stalled = eventually(
        lambda: (c := cluster.condition("broken", "Stalled")) and c["status"] == "True" and c,
        timeout=60,
        message=lambda: str(cluster.resource("broken")),
    )
    assert stalled["reason"] == "StorageError"
    assert "after 2 attempt(s)" in stalled["message"] and "S3 endpoint unreachable" in stalled["message"]
    assert cluster.condition("broken", "Succeeded")["status"] == "False"
    assert len(cluster.jobs("broken")) == 2  # maxAttempts, no more


def test_invalid_spec_is_stalled_and_others_keep_being_served(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    # A cross-field mistake is refused by the API server (its CEL twin) before the operator sees it ...
    with pytest.raises(ApiStatusError, match=r"selection\.batchSize must be one of benchmark\.batchSizes"):
        cluster.create("refused", fake_spec(shared_dir, selection={"batchSize": 4}))
    # ... one that passes the schema (the emulator's regex is Python's: `$` matches before a newline) is
    # refused by the spec model in the operator.
    cluster.create("bad", fake_spec(shared_dir, targets=[{"name": "cpu\n"}]))
    cluster.create("good", fake_spec(shared_dir))
    stalled = eventually(lambda: cluster.condition("bad", "Stalled"), timeout=30)
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "spec.targets[0].name" in stalled["message"]
    eventually(lambda: succeeded(cluster, "good"), timeout=60)
    assert not cluster.jobs("bad")


def test_unschedulable_gpu_job_is_reported_not_waited_on(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet(gpus=0)
    cluster.start_operator()
    cluster.create(
        "gpu",
        fake_spec(
            shared_dir,
            targets=[{"name": "cpu"}, {"name": "a100", "kind": "gpu"}],
            execution={"unschedulableTimeout": "2s", "backoff": "1s"},
        ),
    )
    stalled = eventually(
        lambda: (c := cluster.condition("gpu", "Stalled")) and c["status"] == "True" and c,
        timeout=60,
        message=lambda: str(cluster.resource("gpu")),
    )
    assert stalled["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in stalled["message"]
    job = cluster.api.get("jobs", cluster.namespace, "gpu-g1-measure-a100-a1")
    assert job is None  # deleted, not left pending forever


def test_concurrency_limit_queues_with_a_visible_reason(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    cluster.start_operator(env={"OPTISMITH_MAX_JOBS": "1"})
    cluster.create("first", fake_spec(shared_dir, model="sleep-2"))
    eventually(lambda: cluster.jobs("first"), timeout=30)
    cluster.create("second", fake_spec(shared_dir))
    queued = eventually(
        lambda: (c := cluster.condition("second", "Succeeded")) and c["reason"] == "Queued" and c,
        timeout=30,
        message=lambda: str(cluster.resource("second")),
    )
    assert "concurrency limit" in queued["message"]
    eventually(lambda: succeeded(cluster, "second"), timeout=90)


@pytest.mark.slow
def test_fifty_resources_at_once(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet(max_parallel=8)
    cluster.start_operator(env={"OPTISMITH_MAX_JOBS": "50"})
    names = [f"m{i:02d}" for i in range(50)]
    for name in names:
        cluster.create(name, fake_spec(shared_dir))
    eventually(
        lambda: all(succeeded(cluster, n) for n in names),
        timeout=240,
        interval=1.0,
        message=lambda: json.dumps({n: (cluster.condition(n, "Succeeded") or {}).get("reason") for n in names}),
    )
    assert not cluster.api.history.duplicates(resource="jobs")
