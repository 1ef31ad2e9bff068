"""Job manifests built from a ModelOptimization: deterministic names, labels, GPU settings, hardening."""

from __future__ import annotations

import json
from typing import Any

from optismith.controller.specs import (
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


def test_gpu_target_job_has_image_gpu_limits_node_selector_and_tolerations() -> None:
    job = build_job(body(), parse_spec(SPEC), JobStep("measure", "t4"), 2, WorkerDefaults())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == "resnet-g3-measure-t4-a2"
    assert container["image"] == "registry.example/worker-gpu:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["limits"]["memory"] == "24Gi"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert container["args"][:3] == ["stage", "benchmark", "evaluate"]
    assert container["args"][-2:] == ["--target", "t4"]
    assert "s3://runs/opt/ml/resnet/gen-3" in container["args"]
    assert job["metadata"]["labels"][LABEL_GENERATION] == "3"
    assert job["metadata"]["labels"][LABEL_ATTEMPT] == "2"


def test_worker_pods_are_locked_down() -> None:
    job = build_job(body(), parse_spec(SPEC), JobStep("prepare"), 1, WorkerDefaults())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["resources"]["limits"]["memory"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_credentials_are_secret_references_never_values() -> None:
    job = build_job(body(), parse_spec(SPEC), JobStep("prepare"), 1, WorkerDefaults())
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert env["OPTISMITH_S3_ENDPOINT"]["value"] == "http://minio:9000"
    manifest = json.loads(env[MANIFEST_ENV]["value"])
    assert manifest["metadata"] == {"name": "resnet", "namespace": "ml", "generation": 3, "uid": "u-1"}
    assert "status" not in manifest


def test_job_names_are_deterministic_and_valid_for_long_names() -> None:
    long = "m" * 60
    name = job_name(long, 12, JobStep("measure", "gpu-a100"), 3)
    assert name == job_name(long, 12, JobStep("measure", "gpu-a100"), 3)
    assert len(name) <= 63 and name.endswith(name[-8:])
    assert name != job_name(long, 12, JobStep("measure", "gpu-a100"), 4)
