"""Job manifests built from a ModelOptimization: deterministic names, labels, GPU settings, hardening."""

from __future__ import annotations

import json
from typing import Any

from optismith.controller.specs import (
    IRSA_SKIP_ANNOTATION,
    LABEL_ATTEMPT,
    LABEL_GENERATION,
    MANIFEST_ENV,
    WorkerDefaults,
    build_job,
    job_name,
)
from optismith.pipeline.plan import JobStep
from optismith.spec import parse_spec

SPEC: dict[str, Any] = {
    "model": {"uri": "s3://models/resnet/"},
    "output": {"uri": "s3://runs/opt"},
    "calibration": {"uri": "s3://data/calib.npz"},
    "storage": {"endpoint": "http://minio:9000", "pathStyle": True, "credentialsSecret": {"name": "s3-creds"}},
    "targets": [
        {"name": "cpu"},
        {
            "name": "t4",
            "kind": "gpu",
            "image": "registry.example/worker-gpu:1",
            "gpus": 2,
            "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "resources": {"limits": {"memory": "24Gi"}},
        },
    ],
}


def body(generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "resnet", "namespace": "ml", "generation": generation, "uid": "u-1"},
        "spec": SPEC,
        "status": {"phase": "Running"},
    }


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod.get("initContainers", []), *pod["containers"]]}


def test_gpu_target_job_has_image_gpu_limits_node_selector_and_tolerations() -> None:
    job = build_job(body(), parse_spec(SPEC), JobStep("measure", "t4"), 2, WorkerDefaults())
    pod = job["spec"]["template"]["spec"]
    steps = containers(job)
    execute = steps["execute"]
    assert job["metadata"]["name"] == "resnet-g3-measure-t4-a2"
    assert {c["image"] for c in steps.values()} == {"registry.example/worker-gpu:1"}
    # The GPU is the execute step's; fetch and upload only move files.
    assert execute["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert execute["resources"]["limits"]["memory"] == "24Gi"
    assert all("nvidia.com/gpu" not in steps[s]["resources"]["limits"] for s in ("fetch", "upload"))
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    for container in steps.values():
        assert container["args"][:5] == ["stage", "benchmark", "evaluate", "--target", "t4"]
    assert "s3://runs/opt/ml/resnet/gen-3" in steps["upload"]["args"]
    assert job["metadata"]["labels"][LABEL_GENERATION] == "3"
    assert job["metadata"]["labels"][LABEL_ATTEMPT] == "2"


def test_worker_pods_are_locked_down() -> None:
    for step in (JobStep("prepare"), JobStep("finalize")):
        job = build_job(body(), parse_spec(SPEC), step, 1, WorkerDefaults())
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert "shareProcessNamespace" not in pod and "hostNetwork" not in pod
        for container in containers(job).values():
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
            assert container["resources"]["limits"]["memory"]
            assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["activeDeadlineSeconds"] == 3600


def _secret_refs(container: dict[str, Any]) -> list[str]:
    return [e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_a_model_running_phase_is_fetch_execute_upload_and_only_fetch_and_upload_hold_credentials() -> None:
    defaults = WorkerDefaults(extra_env=(("OPTISMITH_S3_MAX_ATTEMPTS", "8"), ("OMP_NUM_THREADS", "4"),
                                         ("HTTPS_PROXY", "http://user:pw@proxy:3128")))
    for step in (JobStep("prepare"), JobStep("measure", "cpu")):
        job = build_job(body(), parse_spec(SPEC), step, 1, defaults)
        pod = job["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["initContainers"]] == ["fetch", "execute"]
        assert [c["name"] for c in pod["containers"]] == ["upload"]
        steps = containers(job)
        for name, container in steps.items():
            assert container["args"][container["args"].index("--step") + 1] == name
            assert container["args"][container["args"].index("--scratch") + 1] == "/work"
        execute = steps["execute"]
        # No credentials in the execute step's environment or mounts, no manifest, no storage settings.
        names = {e["name"] for e in execute["env"]}
        assert not _secret_refs(execute) and not execute.get("envFrom")
        assert not {n for n in names if n.startswith(("AWS_", "OPTISMITH_S3"))} and MANIFEST_ENV not in names
        assert names == {"HOME", "TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS"}  # the proxy's password stays out
        assert "--run-uri" not in execute["args"] and "--manifest-env" not in execute["args"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert all(set(volumes[m["name"]]) == {"name", "emptyDir"} for c in steps.values() for m in c["volumeMounts"])
        mounts = {m["mountPath"]: m for m in execute["volumeMounts"]}
        assert mounts["/work/inputs"]["readOnly"] and mounts["/work/staging"]["readOnly"]
        assert execute["securityContext"]["readOnlyRootFilesystem"] is True
        # The upload step is the only long-lived holder of write credentials, and reads the scratch read-only.
        assert _secret_refs(steps["fetch"]) == _secret_refs(steps["upload"]) == [
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        assert {m["mountPath"]: m.get("readOnly", False) for m in steps["upload"]["volumeMounts"]}["/work"] is True
        assert pod["automountServiceAccountToken"] is False


def test_workload_identity_is_kept_out_of_the_execute_step() -> None:
    defaults = WorkerDefaults(service_account="optismith-worker")
    staged = build_job(body(), parse_spec(SPEC), JobStep("prepare"), 1, defaults)["spec"]["template"]
    assert staged["spec"]["serviceAccountName"] == "optismith-worker"
    assert staged["metadata"]["annotations"] == {IRSA_SKIP_ANNOTATION: "execute"}
    finalize = build_job(body(), parse_spec(SPEC), JobStep("finalize"), 1, defaults)["spec"]["template"]
    assert "annotations" not in finalize["metadata"]


def test_phases_that_run_no_model_are_one_container() -> None:
    for step in (JobStep("finalize"), JobStep("promote")):
        job = build_job(body(), parse_spec({**SPEC, "promotion": {"uri": "s3://models/prod"}}), step, 1,
                        WorkerDefaults())
        pod = job["spec"]["template"]["spec"]
        assert "initContainers" not in pod and [c["name"] for c in pod["containers"]] == ["worker"]
        assert "--step" not in pod["containers"][0]["args"]


def test_credentials_are_secret_references_never_values() -> None:
    job = build_job(body(), parse_spec(SPEC), JobStep("prepare"), 1, WorkerDefaults())
    for name in ("fetch", "upload"):
        env = {e["name"]: e for e in containers(job)[name]["env"]}
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
        assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
        assert env["OPTISMITH_S3_ENDPOINT"]["value"] == "http://minio:9000"
        manifest = json.loads(env[MANIFEST_ENV]["value"])
        assert manifest["metadata"] == {"name": "resnet", "namespace": "ml", "generation": 3, "uid": "u-1"}
        assert "status" not in manifest


def test_every_step_parses_with_the_cli() -> None:
    from optismith.cli import build_parser

    for step in (JobStep("prepare"), JobStep("measure", "t4"), JobStep("finalize")):
        for container in containers(build_job(body(), parse_spec(SPEC), step, 1, WorkerDefaults())).values():
            args = build_parser().parse_args(container["args"])
            assert args.handler.__name__ == "cmd_stage" and args.stages == list(step.stages)


def test_job_names_are_deterministic_and_valid_for_long_names() -> None:
    long = "m" * 60
    name = job_name(long, 12, JobStep("measure", "gpu-a100"), 3)
    assert name == job_name(long, 12, JobStep("measure", "gpu-a100"), 3)
    assert len(name) <= 63 and name.endswith(name[-8:])
    assert name != job_name(long, 12, JobStep("measure", "gpu-a100"), 4)
