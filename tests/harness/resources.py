"""
What the emulated cluster serves: built-in resources plus CRD-registered ones.

Objects are stored under a *storage key* that ignores the API version, so that
a CRD served in several versions shows the same objects through all of them
(without any conversion, which a real server would do via webhooks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

STANDARD_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
# Which verbs each known subresource supports (as shown in discovery).
SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "log": ("get",),
    "binding": ("create",),
    "finalize": ("update",),
}

StorageKey = tuple[str, str]  # (group, plural)


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    shortnames: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = STANDARD_VERBS
    schema: Mapping[str, Any] | None = None  # openAPIV3Schema of this CRD version, if any
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    from_crd: str | None = None  # the CRD name that registered this resource
    storage_version: str | None = None  # for multi-version CRDs; None means this very version

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return self.group, self.version

    @property
    def storage_key(self) -> StorageKey:
        return self.group, self.plural

    @property
    def storage_gvr(self) -> tuple[str, str, str]:
        return self.group, self.storage_version or self.version, self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _core(
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: Iterable[str] = (),
    sub: Iterable[str] = (),
    cats: Iterable[str] = (),
) -> ResourceSpec:
    return ResourceSpec("", "v1", plural, kind, kind.lower(), namespaced, tuple(short), tuple(cats), frozenset(sub))


BUILTIN_RESOURCES: tuple[ResourceSpec, ...] = (
    _core("namespaces", "Namespace", namespaced=False, short=["ns"], sub=["status"]),
    _core("pods", "Pod", short=["po"], sub=["status", "log", "binding"], cats=["all"]),
    _core("events", "Event", short=["ev"]),
    _core("secrets", "Secret"),
    _core("configmaps", "ConfigMap", short=["cm"]),
    _core("services", "Service", short=["svc"], sub=["status"], cats=["all"]),
    _core("serviceaccounts", "ServiceAccount", short=["sa"]),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"], sub=["status"]),
    _core("nodes", "Node", namespaced=False, short=["no"], sub=["status"]),
    ResourceSpec("batch", "v1", "jobs", "Job", "job", True, (), ("all",), frozenset({"status"})),
    ResourceSpec("batch", "v1", "cronjobs", "CronJob", "cronjob", True, ("cj",), ("all",), frozenset({"status"})),
    ResourceSpec("coordination.k8s.io", "v1", "leases", "Lease", "lease", True),
    ResourceSpec("events.k8s.io", "v1", "events", "Event", "event", True, ("ev",)),
    ResourceSpec(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        "customresourcedefinition",
        False,
        ("crd", "crds"),
        ("api-extensions",),
        frozenset({"status"}),
    ),
)

CRD_RESOURCE = BUILTIN_RESOURCES[-1]
NAMESPACES = BUILTIN_RESOURCES[0]


def specs_from_crd(crd: Mapping[str, Any]) -> list[ResourceSpec]:
    """Turn a ``CustomResourceDefinition`` manifest into one resource per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec["group"]
    plural = names["plural"]
    kind = names["kind"]
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    versions = spec.get("versions") or []
    stored = [v["name"] for v in versions if v.get("storage")] or [v["name"] for v in versions[:1]]
    result: list[ResourceSpec] = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        subresources &= {"status", "scale"}
        result.append(
            ResourceSpec(
                group=group,
                version=version["name"],
                plural=plural,
                kind=kind,
                singular=names.get("singular") or kind.lower(),
                namespaced=namespaced,
                shortnames=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(subresources),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                from_crd=(crd.get("metadata") or {}).get("name") or f"{plural}.{group}",
                storage_version=stored[0] if stored else None,
            )
        )
    return result


class ResourceRegistry:
    """All served resources, indexed for the URL router and for discovery."""

    def __init__(self, specs: Iterable[ResourceSpec] = BUILTIN_RESOURCES) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ResourceSpec) -> None:
        self._by_gvr[spec.group, spec.version, spec.plural] = spec

    def remove_crd(self, crd_name: str) -> list[ResourceSpec]:
        gone = [spec for spec in self._by_gvr.values() if spec.from_crd == crd_name]
        for spec in gone:
            del self._by_gvr[spec.group, spec.version, spec.plural]
        return gone

    def find(self, group: str, version: str, plural: str) -> ResourceSpec | None:
        return self._by_gvr.get((group, version, plural))

    def by_storage(self, key: StorageKey) -> ResourceSpec | None:
        for spec in self._by_gvr.values():
            if spec.storage_key == key:
                return spec
        return None

    def all(self) -> list[ResourceSpec]:
        return list(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions (in registration order; the first one is preferred)."""
        result: dict[str, list[str]] = {}
        for spec in self._by_gvr.values():
            versions = result.setdefault(spec.group, [])
            if spec.version not in versions:
                versions.append(spec.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceSpec]:
        return [spec for spec in self._by_gvr.values() if spec.group_version == (group, version)]
