"""
Per-kind defaulting and validation that a real API server applies on writes.

Only what operators commonly trip over is covered: Job defaults and their
immutable template, the Job ``restartPolicy`` rule, Secret ``stringData``,
namespace bookkeeping, container defaults used by the kubelet, and the
name/label syntax rules (e.g. label values longer than 63 characters).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from . import errors
from .resources import ResourceSpec

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Causes = list[tuple[str, str]]


def _validate_labels(labels: Mapping[str, Any], path: str) -> Causes:
    causes: Causes = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            causes.append((f"{path}", f'Invalid value: "{key}": prefix part must be a DNS-1123 subdomain'))
        if not name or len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append(
                (
                    f"{path}",
                    f'Invalid value: "{key}": name part must consist of alphanumeric '
                    f"characters, '-', '_' or '.', and be at most 63 characters",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    f"{path}",
                    f'Invalid value: "{value}": a valid label must be an empty string or '
                    f"consist of alphanumeric characters, '-', '_' or '.', "
                    f"and must be no more than 63 characters",
                )
            )
    return causes


def validate_metadata(spec: ResourceSpec, obj: Mapping[str, Any]) -> Causes:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: Causes = []
    pattern, limit = (_DNS_LABEL, 63) if spec.plural in ("namespaces", "jobs") else (_DNS_SUBDOMAIN, 253)
    if spec.group == "" and spec.plural == "events":
        pattern = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # events tolerate dotted names
    if len(name) > limit or not pattern.match(name):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of '
                f"lower case alphanumeric characters, '-' or '.', and be at most "
                f"{limit} characters",
            )
        )
    causes += _validate_labels(meta.get("labels") or {}, "metadata.labels")
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                causes.append((f"metadata.ownerReferences[{i}].{field}", "Required value"))
    return causes


def _container_defaults(pod_spec: dict[str, Any]) -> None:
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("schedulerName", "default-scheduler")
    for container in pod_spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")


def _validate_pod_spec(pod_spec: Mapping[str, Any], path: str) -> Causes:
    containers = pod_spec.get("containers") or []
    if not containers:
        return [(f"{path}.containers", "Required value")]
    causes: Causes = []
    for i, container in enumerate(containers):
        if not container.get("name"):
            causes.append((f"{path}.containers[{i}].name", "Required value"))
        if not container.get("image"):
            causes.append((f"{path}.containers[{i}].image", "Required value"))
    return causes


def prepare_create(spec: ResourceSpec, obj: dict[str, Any]) -> None:
    """Defaults applied on creation (mutates the fresh request body)."""
    meta = obj["metadata"]
    gvr = (spec.group, spec.plural)
    if gvr == ("", "namespaces"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif gvr == ("", "pods"):
        _container_defaults(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif gvr == ("batch", "jobs"):
        job_spec = obj.setdefault("spec", {})
        job_spec.setdefault("backoffLimit", 6)
        job_spec.setdefault("completions", 1)
        job_spec.setdefault("parallelism", 1)
        job_spec.setdefault("completionMode", "NonIndexed")
        job_spec.setdefault("suspend", False)
        job_spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        template = job_spec.setdefault("template", {})
        template_labels = dict((template.get("metadata") or {}).get("labels") or {})
        if template_labels and not meta.get("labels"):
            meta["labels"] = dict(template_labels)  # SetDefaults_Job copies them
        _container_defaults(template.setdefault("spec", {}))
        obj["status"] = {}
    elif gvr == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    if gvr == ("", "secrets"):
        _fold_string_data(obj)


def finish_create(spec: ResourceSpec, obj: dict[str, Any]) -> None:
    """Defaults that need the server-assigned uid (the Job selector and pod labels)."""
    if (spec.group, spec.plural) == ("batch", "jobs") and not obj["spec"].get("manualSelector"):
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        obj["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = obj["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )


def _fold_string_data(obj: dict[str, Any]) -> None:
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def validate(spec: ResourceSpec, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> Causes:
    causes = validate_metadata(spec, obj)
    gvr = (spec.group, spec.plural)
    if gvr == ("", "pods") and old is None:
        causes += _validate_pod_spec(obj.get("spec") or {}, "spec")
    elif gvr == ("batch", "jobs"):
        template_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        causes += _validate_pod_spec(template_spec, "spec.template.spec")
        policy = template_spec.get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
        if old is not None:
            for field in ("template", "selector", "completionMode"):
                if (obj.get("spec") or {}).get(field) != (old.get("spec") or {}).get(field):
                    causes.append((f"spec.{field}", "Invalid value: field is immutable"))
    return causes


def prepare_update(spec: ResourceSpec, obj: dict[str, Any]) -> None:
    if (spec.group, spec.plural) == ("", "secrets"):
        _fold_string_data(obj)


def raise_if_invalid(spec: ResourceSpec, obj: Mapping[str, Any], causes: Causes) -> None:
    if causes:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.invalid(spec.kind, spec.group, name, causes)
