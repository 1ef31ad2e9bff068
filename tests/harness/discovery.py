"""Discovery documents (legacy, non-aggregated) and the server-side ``Table`` for ``kubectl get``."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import errors
from .resources import SUBRESOURCE_VERBS, ResourceRegistry, ResourceSpec

VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-optismith-harness",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
    }


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = [_group_doc(name, versions) for name, versions in registry.groups().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: ResourceRegistry, group: str) -> dict[str, Any]:
    versions = registry.groups().get(group)
    if not versions or not group:
        raise errors.resource_not_found()
    return dict(_group_doc(group, versions), kind="APIGroup", apiVersion="v1")


def _resource_doc(spec: ResourceSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": spec.plural,
        "singularName": spec.singular,
        "namespaced": spec.namespaced,
        "kind": spec.kind,
        "verbs": list(spec.verbs),
    }
    if spec.shortnames:
        doc["shortNames"] = list(spec.shortnames)
    if spec.categories:
        doc["categories"] = list(spec.categories)
    return doc


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    specs = registry.in_group_version(group, version)
    if not specs:
        raise errors.resource_not_found()
    resources: list[dict[str, Any]] = []
    for spec in specs:
        resources.append(_resource_doc(spec))
        for sub in sorted(spec.subresources):
            resources.append(
                {
                    "name": f"{spec.plural}/{sub}",
                    "singularName": "",
                    "namespaced": spec.namespaced,
                    "kind": spec.kind if sub != "binding" else "Binding",
                    "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


_JSONPATH_TOKEN = re.compile(r'\.([A-Za-z0-9_-]+)|\[\?\(@\.(\w+)==["\']([^"\']*)["\']\)\]|\[(\d+)\]')


def _jsonpath(obj: Any, path: str) -> Any:
    """The tiny JSONPath subset used in printer columns: .a.b, [0], [?(@.type=="Ready")]."""
    value: Any = obj
    for m in _JSONPATH_TOKEN.finditer(path):
        if value is None:
            return None
        if m.group(1) is not None:
            value = value.get(m.group(1)) if isinstance(value, dict) else None
        elif m.group(2) is not None:
            key, expected = m.group(2), m.group(3)
            matches = (
                [v for v in value if isinstance(v, dict) and v.get(key) == expected] if isinstance(value, list) else []
            )
            value = matches[0] if matches else None
        else:
            index = int(m.group(4))
            value = value[index] if isinstance(value, list) and index < len(value) else None
    return value


def human_age(created: str | None, now: float | None = None) -> str:
    """Kubernetes' HumanDuration, as the server renders Age and date columns."""
    if not created:
        return "<unknown>"
    seconds = int((time.time() if now is None else now) - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")))
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 730 else f"{days // 365}y"


def table(spec: ResourceSpec, items: Sequence[Mapping[str, Any]], rv: int) -> dict[str, Any]:
    """A ``meta.k8s.io/v1 Table``, so ``kubectl get`` shows a CRD's additionalPrinterColumns."""
    columns: list[dict[str, Any]] = [
        {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
    ]
    extra = list(spec.printer_columns)
    for col in extra:
        columns.append(
            {
                "name": col["name"],
                "type": col.get("type", "string"),
                "format": col.get("format", ""),
                "description": col.get("description", ""),
                "priority": col.get("priority", 0),
            }
        )
    if not any(col["name"] == "Age" for col in extra):
        columns.append({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0})
    rows = []
    for item in items:
        meta = item.get("metadata") or {}
        cells: list[Any] = [meta.get("name")]
        for col in extra:
            value = _jsonpath(item, col.get("jsonPath", ""))
            cells.append(human_age(value) if col.get("type") == "date" and isinstance(value, str) else value)
        if not any(col["name"] == "Age" for col in extra):
            cells.append(human_age(meta.get("creationTimestamp")))
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(rv)},
        "columnDefinitions": columns,
        "rows": rows,
    }
