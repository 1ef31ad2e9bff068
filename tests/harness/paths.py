"""
Parsing of Kubernetes API URLs into (group, version, resource, namespace, name, subresource, verb).

kmock 0.8 treats ``/api/v1/namespaces`` as a namespaced URL with no namespace
and fails; the real API server routes it to the cluster-scoped ``namespaces``
resource. The rules here follow the real router.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# Subresources of the ``namespaces`` resource itself: /api/v1/namespaces/{name}/{sub}.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})  # finalize is routed, then 404s


@dataclasses.dataclass(frozen=True)
class ApiPath:
    """A parsed API URL. ``plural`` is None for discovery documents (/api, /apis/g/v, ...)."""

    group: str | None = None  # None for non-API URLs (/version, /openapi/v2, /healthz)
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False  # the deprecated /api/v1/watch/... form

    @property
    def is_resource(self) -> bool:
        return self.plural is not None


def parse_path(path: str) -> ApiPath:
    parts = [part for part in path.split("/") if part]
    if not parts or parts[0] not in ("api", "apis"):
        return ApiPath()
    if parts[0] == "api":
        group = ""
        rest = parts[1:]
    else:
        if len(parts) == 1:
            return ApiPath(group=None, version=None)  # /apis itself
        group = parts[1]
        rest = parts[2:]
    if not rest:
        return ApiPath(group=group)  # /api or /apis/{group}
    version, *rest = rest
    legacy_watch = False
    if rest and rest[0] == "watch":
        legacy_watch = True
        rest = rest[1:]
    if not rest:
        return ApiPath(group=group, version=version, legacy_watch=legacy_watch)

    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        is_namespace_subresource = group == "" and len(rest) == 3 and rest[2] in NAMESPACE_SUBRESOURCES
        if not is_namespace_subresource:
            namespace = rest[1]
            rest = rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    subresource = "/".join(rest[2:]) or None
    return ApiPath(group, version, plural, namespace, name, subresource, legacy_watch)


def guess_verb(method: str, path: ApiPath, query: Mapping[str, str]) -> str | None:
    """The RBAC verb of a request, as the real authorizer would see it."""
    if not path.is_resource:
        return "get" if method in ("GET", "HEAD") else None
    watching = path.legacy_watch or query.get("watch", "").lower() in ("true", "1")
    if method in ("GET", "HEAD"):
        if watching:
            return "watch"
        return "get" if path.name is not None else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if path.name is not None else "deletecollection"
    return None
