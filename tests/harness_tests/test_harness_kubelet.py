"""The kubelet stand-in: Jobs run as local processes with real-looking Pod and Job statuses."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import ApiServer, Kubelet, eventually, process_alive
from tests.harness_tests.harness_samples import JOBS, PODS, job

pytestmark = pytest.mark.timeout(60)

NS = "default"

WRITE_MESSAGE = (
    "import os; open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write('done:' + os.environ['TOKEN'] + "
    "':' + os.environ['MODE'] + ':' + os.environ['CFG_level']); print('working')"
)


def jobs_path(name: str = "") -> str:
    return JOBS.format(ns=NS) + (f"/{name}" if name else "")


def wait_finished(api: ApiServer, name: str, timeout: float = 10) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        obj = api.client.get(jobs_path(name))
        types = {c["type"] for c in obj.get("status", {}).get("conditions", [])}
        return obj if types & {"Complete", "Failed"} else None

    return eventually(finished, timeout=timeout, message=f"job {name} did not finish")


def pods_of(api: ApiServer, name: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = api.client.get(PODS.format(ns=NS), labelSelector=f"job-name={name}")["items"]
    return pods


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_successful_job(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet()
    k8s_api.client.create(
        f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    k8s_api.client.create(
        f"/api/v1/namespaces/{NS}/configmaps",
        {"metadata": {"name": "cfg"}, "data": {"mode": "fast", "level": "3"}},
    )
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
    ]
    created = k8s_api.client.create(
        jobs_path(),
        job("ok", WRITE_MESSAGE, env=env, envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]),
    )

    finished = wait_finished(k8s_api, "ok")
    status = finished["status"]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["startTime"] and status["completionTime"]
    assert conditions(finished)["Complete"]["status"] == "True"
    assert conditions(finished)["SuccessCriteriaMet"]["reason"] == "CompletionsReached"

    [pod] = pods_of(k8s_api, "ok")
    assert pod["metadata"]["labels"]["controller-uid"] == created["metadata"]["uid"]
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Job",
        "ok",
        created["metadata"]["uid"],
        True,
    )
    assert pod["spec"]["nodeName"] == "harness-node"
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert terminated["message"] == "done:s3cr3t:fast:3"
    log = k8s_api.client.request("GET", f"{PODS.format(ns=NS)}/{pod['metadata']['name']}/log")
    assert log.text == "working\n"


def test_failing_job_falls_back_to_logs(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet()
    code = "import sys; [print('line', i) for i in range(100)]; sys.exit(3)"
    k8s_api.client.create(jobs_path(), job("bad", code, terminationMessagePolicy="FallbackToLogsOnError"))
    finished = wait_finished(k8s_api, "bad")
    assert finished["status"]["failed"] == 1 and "completionTime" not in finished["status"]
    failed = conditions(finished)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    [pod] = pods_of(k8s_api, "bad")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"].splitlines() == [f"line {i}" for i in range(20, 100)]


def test_backoff_limit_retries_with_new_pods(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet()
    k8s_api.client.create(jobs_path(), job("flaky", "raise SystemExit(1)", backoff_limit=2))
    finished = wait_finished(k8s_api, "flaky")
    assert finished["status"]["failed"] == 3
    assert len(pods_of(k8s_api, "flaky")) == 3


def test_active_deadline_kills_the_process(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet()
    sleeper = job("slow", 'import time; print("started", flush=True); time.sleep(60)')
    # Long enough for a busy CI host to schedule and start the pod first: the test is about the kill.
    sleeper["spec"]["activeDeadlineSeconds"] = 3
    k8s_api.client.create(jobs_path(), sleeper)
    finished = wait_finished(k8s_api, "slow", timeout=20)
    failed = conditions(finished)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    eventually(lambda: not pods_of(k8s_api, "slow"), message="the active pod was not deleted")
    [run] = eventually(lambda: [r for r in node.runs if r.killed], message="the process was not killed")
    assert run.pid is not None and not process_alive(run.pid)


def test_unschedulable_gpu_pod_stays_pending(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet(gpus=0)
    gpu = job("train", 'print("never")', resources={"limits": {"nvidia.com/gpu": 1}})
    k8s_api.client.create(jobs_path(), gpu)

    def pending_pod() -> dict[str, Any] | None:
        pods = pods_of(k8s_api, "train")
        return pods[0] if pods and "PodScheduled" in conditions(pods[0]) else None

    pod = eventually(pending_pod)
    scheduled = conditions(pod)["PodScheduled"]
    assert pod["status"]["phase"] == "Pending" and "startTime" not in pod["status"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"].startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    status = k8s_api.client.get(jobs_path("train"))["status"]
    assert status["active"] == 1 and not conditions({"status": status})
    assert all(not run.argv for run in node.runs)  # nothing was started


def test_gpu_pods_run_when_the_node_has_gpus(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet(gpus=1)
    k8s_api.client.create(jobs_path(), job("train", 'print("ok")', resources={"limits": {"nvidia.com/gpu": 1}}))
    assert wait_finished(k8s_api, "train")["status"]["succeeded"] == 1
    node = k8s_api.client.get("/api/v1/nodes/harness-node")
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"


def test_deleting_a_running_job_kills_its_process(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet()
    k8s_api.client.create(jobs_path(), job("victim", "import time; time.sleep(60)"))
    run = eventually(lambda: next((r for r in node.runs if r.pid), None))
    k8s_api.client.delete(jobs_path("victim"), {"propagationPolicy": "Background"})
    eventually(lambda: not process_alive(run.pid or 0), message="the process survived its job")
    # The node agent records the kill when the cancellation reaches it, just after the process is gone.
    eventually(lambda: run.killed, message="the node agent did not record the kill")
    eventually(lambda: not pods_of(k8s_api, "victim"), message="the pod outlived its job")


def test_parallelism_is_limited(k8s_api: ApiServer, kubelet: Callable[..., Kubelet], tmp_path: Any) -> None:
    kubelet(max_parallel=1)
    code = (
        "import os, time; p = os.environ['OUT']; open(p + '.start', 'w').write(str(time.time())); "
        "time.sleep(0.3); open(p + '.end', 'w').write(str(time.time()))"
    )
    for name in ("one", "two"):
        k8s_api.client.create(jobs_path(), job(name, code, env=[{"name": "OUT", "value": str(tmp_path / name)}]))
    for name in ("one", "two"):
        wait_finished(k8s_api, name)
    spans = sorted(
        (float((tmp_path / f"{n}.start").read_text()), float((tmp_path / f"{n}.end").read_text()))
        for n in ("one", "two")
    )
    assert spans[0][1] <= spans[1][0]  # the second started only after the first ended


def test_command_mapping_volumes_and_working_dir(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    tool = [sys.executable, "-c", "import os, sys; print(os.getcwd()); print(sys.argv[1:])"]
    node = kubelet(command_map={"optismith": tool})
    spec = job("mapped", "")
    container = spec["spec"]["template"]["spec"]["containers"][0]
    container.update(
        command=["optismith", "run"],
        args=["--out=/workspace/out", "$(MODEL_DIR)/m.keras"],
        env=[{"name": "MODEL_DIR", "value": "/models"}],
        workingDir="/workspace",
        volumeMounts=[
            {"name": "scratch", "mountPath": "/workspace"},
            {"name": "models", "mountPath": "/models"},
        ],
    )
    spec["spec"]["template"]["spec"]["volumes"] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "m"}},
    ]
    k8s_api.client.create(jobs_path(), spec)
    assert wait_finished(k8s_api, "mapped")["status"]["succeeded"] == 1
    [run] = node.runs
    assert run.argv[:3] == tool and run.argv[3] == "run"
    assert run.argv[4].startswith("--out=") and run.argv[4].endswith("/volumes/scratch/out")
    assert run.argv[5].endswith("/pvc/default/m/m.keras") and os.path.isdir(os.path.dirname(run.argv[5]))
    assert run.cwd.endswith("/volumes/scratch") and run.env["MODEL_DIR"].endswith("/pvc/default/m")


def test_missing_secret_blocks_the_container_until_it_appears(
    k8s_api: ApiServer, kubelet: Callable[..., Kubelet]
) -> None:
    kubelet()
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    k8s_api.client.create(jobs_path(), job("waits", 'import os; print(os.environ["TOKEN"])', env=env))

    def waiting() -> dict[str, Any] | None:
        pods = pods_of(k8s_api, "waits")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return statuses[0]["state"].get("waiting") if statuses else None

    state = eventually(waiting)
    assert state == {"reason": "CreateContainerConfigError", "message": 'secret "late" not found'}
    k8s_api.client.create(
        f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "late"}, "stringData": {"token": "t"}}
    )
    assert wait_finished(k8s_api, "waits")["status"]["succeeded"] == 1


def test_missing_executable_is_a_start_error(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet()
    spec = job("nocmd", "")
    spec["spec"]["template"]["spec"]["containers"][0]["command"] = ["no-such-binary-here"]
    k8s_api.client.create(jobs_path(), spec)
    wait_finished(k8s_api, "nocmd")
    [pod] = pods_of(k8s_api, "nocmd")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert "executable file not found" in terminated["message"]


@pytest.mark.parametrize("policy", ["OnFailure"])
def test_on_failure_restarts_in_the_same_pod(k8s_api: ApiServer, kubelet: Callable[..., Kubelet], policy: str) -> None:
    kubelet()
    spec = job("restarts", "raise SystemExit(2)", backoff_limit=1)
    spec["spec"]["template"]["spec"]["restartPolicy"] = policy
    k8s_api.client.create(jobs_path(), spec)
    finished = wait_finished(k8s_api, "restarts")
    assert conditions(finished)["Failed"]["reason"] == "BackoffLimitExceeded"


def test_ttl_after_finished_deletes_the_job_and_its_pods(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    kubelet()
    spec = job("short-lived", 'print("bye")')
    spec["spec"]["ttlSecondsAfterFinished"] = 0
    k8s_api.client.create(jobs_path(), spec)
    eventually(lambda: k8s_api.client.request("GET", jobs_path("short-lived")).status == 404)
    assert not pods_of(k8s_api, "short-lived")
    assert k8s_api.history.deletes(resource="jobs", user_agent="harness-kubelet")


def _with_init_containers(name: str, steps: list[tuple[str, str]], main: str) -> dict[str, Any]:
    """A Job whose pod runs `steps` (name, code) as init containers, then `main`, sharing an emptyDir."""
    body = job(name, main, volumeMounts=[{"name": "shared", "mountPath": "/shared"}])
    pod = body["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "shared", "emptyDir": {}}]
    pod["initContainers"] = [
        {"name": step, "image": "python:3.11-slim", "command": ["python", "-c", code],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
         "terminationMessagePolicy": "FallbackToLogsOnError"}
        for step, code in steps
    ]
    return body


def test_init_containers_run_in_order_on_a_shared_volume(k8s_api: ApiServer, kubelet: Callable[..., Kubelet]) -> None:
    node = kubelet()
    append = "open('/shared/trail', 'a').write('{}\\n')"
    k8s_api.client.create(jobs_path(), _with_init_containers(
        "ordered",
        [("first", append.format("first")), ("second", append.format("second"))],
        "import os; trail = open('/shared/trail').read().split(); "
        "open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write(','.join(trail + ['main']))",
    ))
    finished = wait_finished(k8s_api, "ordered")
    assert finished["status"]["succeeded"] == 1
    [pod] = pods_of(k8s_api, "ordered")
    init = pod["status"]["initContainerStatuses"]
    assert [s["name"] for s in init] == ["first", "second"]
    assert all(s["state"]["terminated"]["exitCode"] == 0 for s in init)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "first,second,main"
    [run] = node.runs
    assert [c.name for c in run.containers] == ["first", "second", "main"] and run.exit_code == 0


def test_a_failed_init_container_fails_the_pod_and_the_rest_never_run(
    k8s_api: ApiServer, kubelet: Callable[..., Kubelet]
) -> None:
    node = kubelet()
    k8s_api.client.create(jobs_path(), _with_init_containers(
        "halted",
        [("fetch", "print('cannot reach the store'); raise SystemExit(5)"), ("never", "raise SystemExit(0)")],
        "raise SystemExit(0)",
    ))
    finished = wait_finished(k8s_api, "halted")
    assert finished["status"]["failed"] == 1
    [pod] = pods_of(k8s_api, "halted")
    assert pod["status"]["phase"] == "Failed"
    [fetch] = pod["status"]["initContainerStatuses"]
    assert (fetch["name"], fetch["state"]["terminated"]["exitCode"]) == ("fetch", 5)
    assert fetch["state"]["terminated"]["message"] == "cannot reach the store\n"
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    [run] = node.runs
    assert [c.name for c in run.containers] == ["fetch"] and run.exit_code == 5
