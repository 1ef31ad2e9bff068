"""CRD manifests for the harness' own tests (not Optismith's CRD)."""

from __future__ import annotations

from typing import Any


def widget_crd(*, status_subresource: bool = True, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``widgets.example.io``: namespaced, short name ``wd``, a Phase printer column."""
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "additionalPrinterColumns": [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}],
        "schema": {
            "openAPIV3Schema": schema
            or {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
                "listKind": "WidgetList",
            },
            "versions": [version],
        },
    }


def widget(name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": meta, "spec": spec}


def job(name: str, code: str, *, backoff_limit: int = 0, **container: Any) -> dict[str, Any]:
    """A Job running ``python -c code`` (mapped to the local interpreter by the kubelet)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11-slim",
                            "command": ["python", "-c", code],
                            **container,
                        },
                    ],
                }
            },
        },
    }


WIDGETS = "/apis/example.io/v1/namespaces/{ns}/widgets"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
