"""Pure functions that turn a ModelOptimization into Job manifests. No I/O: easy to test and to read.

A phase that runs the model (plan.Phase.staged) is one pod of three steps sharing an emptyDir at /work
(optismith.pipeline.staging): the fetch init container holds the storage credentials and runs no model
code; the execute init container runs the stages with no credentials in its environment or mounts, no
service-account token, a read-only root and only /work writable (its inputs read-only); the upload main
container holds the credentials again and publishes only what execute declared. Egress is the chart's
NetworkPolicy's (DNS and the object store only, for the whole pod: a pod has one network namespace), and
the execute step adds its own sandbox where the node allows user namespaces (docs/isolation.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from optismith.pipeline.plan import JobStep
from optismith.pipeline.sandbox import is_kept
from optismith.runs import layout
from optismith.spec import ModelOptimizationSpec, TargetSpec, seconds

LABEL_PREFIX = "optismith.io"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = f"{LABEL_PREFIX}/name"
LABEL_GENERATION = f"{LABEL_PREFIX}/generation"
LABEL_PHASE = f"{LABEL_PREFIX}/phase"
LABEL_TARGET = f"{LABEL_PREFIX}/target"
LABEL_ATTEMPT = f"{LABEL_PREFIX}/attempt"
MANAGER = "optismith"
MANIFEST_ENV = "OPTISMITH_MANIFEST"
TERMINATION_LOG = "/dev/termination-log"
SCRATCH_VOLUME = "scratch"
SCRATCH_MOUNT = "/work"
STEP_CONTAINERS = ("fetch", "execute", "upload")
# The EKS pod identity webhook injects the IRSA token and AWS_ROLE_ARN into every container unless told not to.
IRSA_SKIP_ANNOTATION = "eks.amazonaws.com/skip-containers"


@dataclass(frozen=True)
class WorkerDefaults:
    """What the operator's Helm values set for Jobs; targets override image and resources."""

    cpu_image: str = "ghcr.io/optismith/worker-cpu:0.1.0"
    gpu_image: str = "ghcr.io/optismith/worker-gpu:0.1.0"
    command: tuple[str, ...] = ("optismith",)
    cpu_resources: dict[str, dict[str, str]] = field(default_factory=lambda: {
        "requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "6Gi"}})
    gpu_resources: dict[str, dict[str, str]] = field(default_factory=lambda: {
        "requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}})
    service_account: str | None = None  # for IRSA / workload identity; no token is mounted either way
    image_pull_policy: str = "IfNotPresent"
    extra_env: tuple[tuple[str, str], ...] = ()


def run_uri(spec: ModelOptimizationSpec, namespace: str, name: str, generation: int) -> str:
    """The run directory of one generation of a resource."""
    return layout.run_uri(spec.output.uri, namespace, name, layout.generation_run_id(generation))


def job_name(name: str, generation: int, step: JobStep, attempt: int) -> str:
    """Deterministic, so a restarted operator finds (and never duplicates) the Jobs it made.

    A DNS label of at most 63 characters (the Job's pods carry it in their `job-name` label), unique per
    resource, generation, step and attempt: long names and names with dots (valid for the resource, not for
    a Job) are shortened and made unique by a digest of the whole.
    """
    base = f"{name}-g{generation}-{step.key}-a{attempt}"
    if len(base) <= 63 and "." not in name:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    suffix = f"-g{generation}-{step.key}-a{attempt}-{digest}"
    if len(suffix) > 62:
        # A long target name would crowd out the resource's name and the digest (and with it what makes
        # the name unique); it stays in the digest and in the Job's labels.
        suffix = f"-g{generation}-{step.phase}-a{attempt}-{digest}"
    return (name[: 63 - len(suffix)].replace(".", "-") + suffix).strip("-")[:63]


def _safe_label(value: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63]
    return value.strip("-._") or "x"


def job_labels(name: str, generation: int, step: JobStep, attempt: int) -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_NAME: _safe_label(name),
        LABEL_GENERATION: str(generation),
        LABEL_PHASE: step.phase,
        LABEL_ATTEMPT: str(attempt),
    }
    if step.target:
        labels[LABEL_TARGET] = step.target
    return labels


def manifest_json(body: dict[str, Any]) -> str:
    """The manifest a worker validates again: spec + identity, without status or server fields."""
    metadata = body.get("metadata", {})
    document = {
        "apiVersion": body.get("apiVersion", "optismith.io/v1alpha1"),
        "kind": body.get("kind", "ModelOptimization"),
        "metadata": {k: metadata[k] for k in ("name", "namespace", "generation", "uid") if k in metadata},
        "spec": body.get("spec", {}),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def _storage_env(spec: ModelOptimizationSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    storage = spec.storage
    if storage.endpoint:
        env.append({"name": "OPTISMITH_S3_ENDPOINT", "value": storage.endpoint})
    if storage.region:
        env.append({"name": "AWS_REGION", "value": storage.region})
    if storage.path_style:
        env.append({"name": "OPTISMITH_S3_PATH_STYLE", "value": "true"})
    secret = storage.credentials_secret
    if secret is not None:
        # Credentials travel as secretKeyRefs only: the operator never reads or copies their values.
        env.append({"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
            "name": secret.name, "key": secret.access_key_id_key}}})
        env.append({"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
            "name": secret.name, "key": secret.secret_access_key_key}}})
        # Temporary credentials (STS AssumeRole with a session policy, docs/reliability.md) need their token.
        env.append({"name": "AWS_SESSION_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": secret.name, "key": "AWS_SESSION_TOKEN", "optional": True}}})
    return env


def _target(spec: ModelOptimizationSpec, step: JobStep) -> TargetSpec:
    if step.target is None:
        return TargetSpec(name="cpu", kind="cpu")  # prepare / finalize / promote always run on CPU
    for target in spec.targets:
        if target.name == step.target:
            return target
    raise ValueError(f"unknown target {step.target!r}")


def _resources(target: TargetSpec, defaults: WorkerDefaults) -> dict[str, dict[str, str]]:
    base = defaults.gpu_resources if target.kind == "gpu" else defaults.cpu_resources
    requests = {**base.get("requests", {}), **target.resources.requests}
    limits = {**base.get("limits", {}), **target.resources.limits}
    if target.kind == "gpu":
        gpus = str(target.gpus or 1)
        limits["nvidia.com/gpu"] = gpus
        requests["nvidia.com/gpu"] = gpus
    return {"requests": requests, "limits": limits}


_LOCKED_DOWN = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False,
                "capabilities": {"drop": ["ALL"]}}


def _container(name: str, image: str, args: list[str], env: list[dict[str, Any]], resources: dict[str, Any],
               mounts: list[dict[str, Any]], defaults: WorkerDefaults) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": list(defaults.command),
        "args": args,
        "env": env,
        "resources": resources,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": dict(_LOCKED_DOWN),
        "volumeMounts": mounts,
    }


def _tmp(step: str) -> dict[str, Any]:
    """Each container's own /tmp, on the pod's emptyDir (the root filesystem is read-only)."""
    return {"name": SCRATCH_VOLUME, "mountPath": "/tmp", "subPath": f".tmp/{step}"}


def _staged_containers(stage_args: list[str], run: list[str], image: str, credentialed_env: list[dict[str, Any]],
                       plain_env: list[dict[str, Any]], resources: dict[str, Any],
                       defaults: WorkerDefaults) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(init containers, containers) of a staged phase: fetch, execute, upload."""
    scratch = ["--scratch", SCRATCH_MOUNT]
    transfer = {"requests": dict(defaults.cpu_resources.get("requests", {})),
                "limits": dict(defaults.cpu_resources.get("limits", {}))}
    whole = {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_MOUNT}
    fetch = _container("fetch", image, [*stage_args, "--step", "fetch", *scratch, *run], credentialed_env,
                       transfer, [whole, _tmp("fetch")], defaults)
    execute = _container("execute", image, [*stage_args, "--step", "execute", *scratch], plain_env, resources, [
        whole,
        {"name": SCRATCH_VOLUME, "mountPath": f"{SCRATCH_MOUNT}/inputs", "subPath": "inputs", "readOnly": True},
        {"name": SCRATCH_VOLUME, "mountPath": f"{SCRATCH_MOUNT}/staging", "subPath": "staging", "readOnly": True},
        _tmp("execute"),
    ], defaults)
    upload = _container("upload", image, [*stage_args, "--step", "upload", *scratch, *run], credentialed_env,
                        transfer, [{**whole, "readOnly": True}, _tmp("upload")], defaults)
    return [fetch, execute], [upload]


def build_job(
    body: dict[str, Any],
    spec: ModelOptimizationSpec,
    step: JobStep,
    attempt: int,
    defaults: WorkerDefaults,
) -> dict[str, Any]:
    """The Job for one step of a run. Owner references are added by the caller (kopf.adopt)."""
    metadata = body["metadata"]
    name, namespace, generation = metadata["name"], metadata["namespace"], int(metadata.get("generation", 1))
    target = _target(spec, step)
    image = target.image or (defaults.gpu_image if target.kind == "gpu" else defaults.cpu_image)
    run = ["--manifest-env", MANIFEST_ENV, "--run-uri", run_uri(spec, namespace, name, generation)]
    stage_args = ["stage", *step.stages]
    if step.target:
        stage_args += ["--target", step.target]
    base_env = [{"name": "HOME", "value": "/tmp"}, {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]
    extra = [{"name": k, "value": v} for k, v in defaults.extra_env]
    credentialed_env = [{"name": MANIFEST_ENV, "value": manifest_json(body)}, *base_env, *_storage_env(spec), *extra]
    # The execute step gets what the model-running child may keep (optismith.pipeline.sandbox), nothing more.
    plain_env = [*base_env, *(e for e in extra if is_kept(e["name"]))]
    labels = job_labels(name, generation, step, attempt)
    resources = _resources(target, defaults)
    init_containers: list[dict[str, Any]] = []
    if step.staged:
        init_containers, containers = _staged_containers(stage_args, run, image, credentialed_env, plain_env,
                                                         resources, defaults)
    else:  # finalize, promote: no model code runs, one container
        containers = [_container("worker", image, [*stage_args, *run], credentialed_env, resources,
                                 [{"name": SCRATCH_VOLUME, "mountPath": "/tmp"}], defaults)]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": [{"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": "20Gi"}}],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    template_metadata: dict[str, Any] = {"labels": labels}
    if defaults.service_account:
        pod_spec["serviceAccountName"] = defaults.service_account
        if step.staged:  # IRSA credentials only where the storage credentials belong
            template_metadata["annotations"] = {IRSA_SKIP_ANNOTATION: "execute"}
    if target.node_selector:
        pod_spec["nodeSelector"] = dict(target.node_selector)
    if target.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in target.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(name, generation, step, attempt), "namespace": namespace,
                     "labels": labels},
        "spec": {
            # Retries are the operator's (with backoff and a visible attempt count), not the Job's.
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, int(seconds(spec.execution.stage_deadline))),
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }
