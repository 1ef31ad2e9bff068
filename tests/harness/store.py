"""
The object store with the semantics of the real API server (etcd + registry + GC).

Everything here is synchronous and runs on the server's event loop thread only:
with no ``await`` inside a write, every write is atomic, and a watch can take
its snapshot and subscribe in one step, so no change can slip in between.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kmock

from . import admission, errors, schema
from .patches import APPLY, apply_patch
from .resources import CRD_RESOURCE, NAMESPACES, ResourceRegistry, ResourceSpec, StorageKey, specs_from_crd
from .selectors import ObjectFilter
from .watching import Watcher, WatchEvent

Obj = dict[str, Any]
ObjKey = tuple[str | None, str]  # (namespace, name)

# Resources whose API default deletion propagation is Orphan (a real quirk of batch/v1):
# deleting a Job via the API without propagationPolicy leaves its Pods behind.
ORPHAN_BY_DEFAULT = frozenset({("batch", "jobs"), ("batch", "cronjobs")})
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


# Built-ins that have metadata.generation (most others, like ConfigMaps and Pods, have none).
GENERATION_TRACKED = frozenset(
    {
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }
)


def tracks_generation(spec: ResourceSpec) -> bool:
    return spec.from_crd is not None or (spec.group, spec.plural) in GENERATION_TRACKED


def clone(obj: Any) -> Any:
    """A deep copy of a JSON-like structure; faster than copy.deepcopy for plain data."""
    return json.loads(json.dumps(obj))


def timestamp(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclasses.dataclass
class ListResult:
    items: list[Obj]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None


class ObjectStore:
    def __init__(
        self,
        registry: ResourceRegistry,
        *,
        mirror: kmock.ObjectsArray | None = None,
        event_window: int = 10_000,
        defer: Callable[[float, Callable[[], None]], None] | None = None,
    ) -> None:
        self.registry = registry
        self.rv = 0
        self._objects: dict[StorageKey, dict[ObjKey, Obj]] = collections.defaultdict(dict)
        self._uids: dict[str, tuple[StorageKey, str | None, str]] = {}
        self._dependents: dict[str, set[str]] = collections.defaultdict(set)  # owner uid -> dependent uids
        self._foreground: set[str] = set()  # owners waiting for their dependents to go first
        self._log: collections.deque[WatchEvent] = collections.deque(maxlen=event_window)
        self._watchers: dict[StorageKey, set[Watcher]] = collections.defaultdict(set)
        self._mirror = mirror
        # Garbage collection of orphans is asynchronous in a real cluster; `defer` lets the
        # server schedule it on its loop a bit later instead of inside the creating request.
        self._defer = defer or (lambda delay, fn: fn())

    # ---------------------------------------------------------------- reading

    def get(self, spec: ResourceSpec, namespace: str | None, name: str) -> Obj:
        obj = self._objects[spec.storage_key].get((namespace if spec.namespaced else None, name))
        if obj is None:
            raise errors.not_found(spec.plural, spec.group, name)
        return self._as_version(obj, spec)

    def find(self, spec: ResourceSpec, namespace: str | None, name: str) -> Obj | None:
        obj = self._objects[spec.storage_key].get((namespace if spec.namespaced else None, name))
        return None if obj is None else self._as_version(obj, spec)

    def iter_objects(self, spec: ResourceSpec) -> Iterator[Obj]:
        for obj in self._objects[spec.storage_key].values():
            yield self._as_version(obj, spec)

    def list_objects(
        self,
        spec: ResourceSpec,
        flt: ObjectFilter,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        bucket = self._objects[spec.storage_key]
        if flt.name is not None or flt.fields.name is not None:
            name = flt.name if flt.name is not None else flt.fields.name
            candidates = [(k, o) for k, o in bucket.items() if k[1] == name]
        else:
            candidates = list(bucket.items())
        keys = sorted((k for k, o in candidates if flt.matches(o)), key=lambda k: (k[0] or "", k[1]))
        list_rv = self.rv
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                list_rv, start = int(token["rv"]), tuple(token["start"])
            except (ValueError, KeyError, TypeError) as e:
                raise errors.ApiError(400, f"continue key is not valid: {e}") from e
            keys = [k for k in keys if (k[0] or "", k[1]) > start]
        result = ListResult([], list_rv)
        if limit and len(keys) > limit:
            last = keys[limit - 1]
            raw = json.dumps({"rv": list_rv, "start": [last[0] or "", last[1]]}).encode()
            result.continue_token = base64.urlsafe_b64encode(raw).decode()
            result.remaining = len(keys) - limit
            keys = keys[:limit]
        result.items = [self._as_version(bucket[k], spec) for k in keys]
        return result

    def namespace_phase(self, name: str) -> str | None:
        ns = self._objects[NAMESPACES.storage_key].get((None, name))
        return None if ns is None else (ns.get("status") or {}).get("phase", "Active")

    # ---------------------------------------------------------------- writing

    def create(self, spec: ResourceSpec, namespace: str | None, body: Any, *, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = clone(body)
        self._check_type(spec, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    spec.kind,
                    spec.group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        if spec.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace")
            if not meta["namespace"]:
                raise errors.bad_request("the namespace of the object is not set")
            phase = self.namespace_phase(meta["namespace"])
            if phase is None:
                raise errors.not_found("namespaces", "", meta["namespace"])
            if phase == "Terminating":
                raise errors.ApiError(
                    403,
                    f'{spec.plural} "{meta["name"]}" is forbidden: unable to create new '
                    f"content in namespace {meta['namespace']} because it is being "
                    f"terminated",
                    details={"name": meta["name"], "kind": spec.plural},
                )
        else:
            meta.pop("namespace", None)
        for field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        if spec.has_status and spec.from_crd:
            obj.pop("status", None)  # CRs ignore status on create when it is a subresource
        admission.prepare_create(spec, obj)
        obj, causes = schema.admit(obj, spec.schema)
        admission.raise_if_invalid(spec, obj, causes + admission.validate(spec, obj, None))

        key = (meta["namespace"] if spec.namespaced else None, meta["name"])
        if key in self._objects[spec.storage_key]:
            raise errors.already_exists(spec.plural, spec.group, meta["name"])
        if spec == CRD_RESOURCE:
            self._prepare_crd(obj)

        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamp()
        if tracks_generation(spec):
            meta["generation"] = 1
        admission.finish_create(spec, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        self._commit(spec, key, obj, None)
        if spec == CRD_RESOURCE:
            self._register_crd(obj)
        self._check_dangling_owners(spec, obj)
        return self._as_version(obj, spec)

    def replace(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        old = self.get(spec, namespace, name)
        new = clone(body)
        self._check_type(spec, new)
        body_name = _meta(new).get("name")
        if body_name and body_name != name:
            raise errors.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        return self._update(spec, old, new, subresource=subresource, dry_run=dry_run)

    def patch(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Returns the patched object and whether it was created (server-side apply only)."""
        existing = self.find(spec, namespace, name)
        if existing is None:
            if content_type.startswith(APPLY) and subresource is None and isinstance(patch, dict):
                body = dict(patch)
                body["metadata"] = dict(body.get("metadata") or {}, name=name)
                return self.create(spec, namespace, body, dry_run=dry_run), True
            raise errors.not_found(spec.plural, spec.group, name)
        new = apply_patch(content_type, existing, patch)
        return self._update(spec, existing, new, subresource=subresource, dry_run=dry_run), False

    def delete(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Returns the last state and whether the object is gone (False: awaiting finalizers)."""
        options = options or {}
        obj = self.get(spec, namespace, name)
        meta = _meta(obj)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise errors.conflict(
                spec.plural,
                spec.group,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(spec.plural, spec.group, name)
        if dry_run:
            return obj, False
        if meta.get("deletionTimestamp"):
            return obj, False

        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:
            policy = "Orphan" if (spec.group, spec.plural) in ORPHAN_BY_DEFAULT else "Background"
        uid = meta["uid"]
        if policy == "Orphan":
            self._orphan_dependents(uid)

        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and self._dependents.get(uid):
            finalizers.append("foregroundDeletion")
        is_namespace = spec == NAMESPACES
        is_crd = spec == CRD_RESOURCE
        if finalizers or is_namespace or is_crd:
            marked = clone(obj)
            marked_meta = marked["metadata"]
            marked_meta["deletionTimestamp"] = timestamp()
            marked_meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                marked_meta["finalizers"] = finalizers
            if tracks_generation(spec):
                marked_meta["generation"] = int(marked_meta.get("generation") or 0) + 1
            if is_namespace:
                marked["status"] = {"phase": "Terminating"}
            self._commit(spec, self._key(spec, marked), marked, obj)
            if "foregroundDeletion" in finalizers:
                self._foreground.add(uid)
                self._delete_dependents(uid, "Foreground")
            if is_namespace:
                self._delete_namespace_contents(name)
            if is_crd:
                self._delete_crd_instances(marked)
            self._sweep()
            current = self.find(spec, namespace, name)
            return (current, False) if current is not None else (marked, True)
        return self._remove(spec, obj), True

    def delete_collection(
        self, spec: ResourceSpec, flt: ObjectFilter, options: dict[str, Any] | None = None
    ) -> list[Obj]:
        deleted = []
        for item in self.list_objects(spec, flt).items:
            meta = _meta(item)
            obj, _ = self.delete(spec, meta.get("namespace"), meta["name"], options)
            deleted.append(obj)
        return deleted

    # ---------------------------------------------------------------- watching

    def subscribe(
        self, spec: ResourceSpec, flt: ObjectFilter, watcher: Watcher, *, since: int | None, initial: bool
    ) -> list[tuple[str, Obj]]:
        """
        Register a watcher and return the events it must see first — atomically.

        ``since=None`` replays the current state as ADDED; an explicit resource version
        replays the logged changes after it, or raises 410 Gone if they were evicted.
        """
        if since is not None and not initial:
            oldest = self._log[0].rv if self._log else self.rv + 1
            if since < oldest - 1 and since < self.rv:
                raise errors.ApiError(410, f"too old resource version: {since} ({oldest - 1})")
            backlog = [e for e in self._log if e.rv > since and e.key == spec.storage_key]
            first = [wrapped for e in backlog for wrapped in watcher.translate(e)]
        else:
            first = [("ADDED", o) for o in self.list_objects(spec, flt).items]
        self._watchers[spec.storage_key].add(watcher)
        return first

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers[watcher.spec.storage_key].discard(watcher)

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()
            watchers.clear()

    # ---------------------------------------------------------------- internals

    def _key(self, spec: ResourceSpec, obj: Obj) -> ObjKey:
        meta = _meta(obj)
        return (meta.get("namespace") if spec.namespaced else None, meta["name"])

    def _as_version(self, obj: Obj, spec: ResourceSpec) -> Obj:
        if obj.get("apiVersion") == spec.api_version:
            return obj
        return dict(obj, apiVersion=spec.api_version)  # shallow: stored objects are never mutated

    def _check_type(self, spec: ResourceSpec, obj: Obj) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version and api_version != spec.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the "
                f"expected API version ({spec.api_version})"
            )
        if kind and kind != spec.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({spec.kind})")
        obj["apiVersion"] = spec.api_version
        obj["kind"] = spec.kind
        for key in list(obj):  # apiVersion & kind first, as a real server renders them
            if key not in ("apiVersion", "kind"):
                obj[key] = obj.pop(key)

    def _update(self, spec: ResourceSpec, old: Obj, new: Obj, *, subresource: str | None, dry_run: bool) -> Obj:
        old_meta = _meta(old)
        name = old_meta["name"]
        if subresource not in (None, "status"):
            raise errors.resource_not_found()
        if subresource == "status" and not spec.has_status:
            raise errors.resource_not_found()
        if not isinstance(new.get("metadata", {}), dict):
            raise errors.bad_request("metadata must be an object")
        new_meta = new.setdefault("metadata", {})
        stated_rv = new_meta.get("resourceVersion")
        if stated_rv and stated_rv != old_meta.get("resourceVersion"):
            raise errors.conflict(spec.plural, spec.group, name)

        if subresource == "status":
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            new_meta = new["metadata"]
        elif spec.has_status:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)

        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if field in old_meta:
                new_meta[field] = old_meta[field]
            else:
                new_meta.pop(field, None)
        new["apiVersion"], new["kind"] = spec.api_version, spec.kind
        if old_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    spec.kind,
                    spec.group,
                    name,
                    [
                        (
                            "metadata.finalizers",
                            f"Forbidden: no new finalizers can be added if the object is "
                            f"being deleted, found new finalizers {sorted(added)!r}",
                        )
                    ],
                )
        admission.prepare_update(spec, new)
        new, causes = schema.admit(new, spec.schema)
        admission.raise_if_invalid(spec, new, causes + admission.validate(spec, new, old))

        ignored = {"metadata", "status"} if spec.has_status else {"metadata"}
        changed = {k: v for k, v in new.items() if k not in ignored} != {
            k: v for k, v in old.items() if k not in ignored
        }
        if changed and tracks_generation(spec):
            new["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        if new == old or dry_run:
            return new  # a no-op write: no new resourceVersion and no watch event, as in a real server

        new_meta = new["metadata"]
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            return self._remove(spec, new, previous=old)
        self._commit(spec, self._key(spec, new), new, old)
        if spec == CRD_RESOURCE:
            self._register_crd(new)
        self._check_dangling_owners(spec, new)
        self._sweep()
        return self._as_version(self._objects[spec.storage_key][self._key(spec, new)], spec)

    def _commit(self, spec: ResourceSpec, key: ObjKey, obj: Obj, old: Obj | None) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._objects[spec.storage_key][key] = obj
        uid = obj["metadata"]["uid"]
        self._uids[uid] = (spec.storage_key, key[0], key[1])
        self._index_owners(obj, old)
        self._mirror_version(spec, key, obj)
        self._emit(WatchEvent(self.rv, spec.storage_key, "ADDED" if old is None else "MODIFIED", obj, old))

    def _remove(self, spec: ResourceSpec, obj: Obj, previous: Obj | None = None) -> Obj:
        key = self._key(spec, obj)
        current = self._objects[spec.storage_key].pop(key)
        final = clone(obj)
        self.rv += 1
        final["metadata"]["resourceVersion"] = str(self.rv)
        uid = final["metadata"]["uid"]
        self._uids.pop(uid, None)
        self._index_owners(None, current)
        self._mirror_removal(spec, key)
        self._emit(WatchEvent(self.rv, spec.storage_key, "DELETED", final, previous or current))
        if spec == CRD_RESOURCE:
            for gone in self.registry.remove_crd(final["metadata"]["name"]):
                self._objects.pop(gone.storage_key, None)
        self._delete_dependents(uid, "Background")
        self._sweep()
        return self._as_version(final, spec)

    def _emit(self, event: WatchEvent) -> None:
        self._log.append(event)
        for watcher in list(self._watchers.get(event.key, ())):
            watcher.offer(event)

    # ---------------------------------------------------------------- garbage collection

    def _index_owners(self, obj: Obj | None, old: Obj | None) -> None:
        for source, adding in ((old, False), (obj, True)):
            if source is None:
                continue
            uid = source["metadata"]["uid"]
            for ref in source["metadata"].get("ownerReferences") or []:
                if ref.get("uid"):
                    if adding:
                        self._dependents[ref["uid"]].add(uid)
                    else:
                        self._dependents[ref["uid"]].discard(uid)

    def _locate(self, uid: str) -> tuple[ResourceSpec, Obj] | None:
        where = self._uids.get(uid)
        if where is None:
            return None
        storage_key, namespace, name = where
        spec = self.registry.by_storage(storage_key)
        obj = self._objects[storage_key].get((namespace, name))
        return None if spec is None or obj is None else (spec, obj)

    def _has_live_owner(self, obj: Obj) -> bool:
        return any(ref.get("uid") in self._uids for ref in obj["metadata"].get("ownerReferences") or [])

    def _delete_dependents(self, owner_uid: str, policy: str) -> None:
        for dep_uid in list(self._dependents.get(owner_uid, ())):
            found = self._locate(dep_uid)
            if found is None:
                continue
            spec, dep = found
            meta = dep["metadata"]
            others = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if any(r.get("uid") in self._uids for r in others):
                self._orphan_one(spec, dep, owner_uid)  # other owners keep it; drop the dangling reference
                continue
            self.delete(spec, meta.get("namespace"), meta["name"], {"propagationPolicy": policy})
        if not self._dependents.get(owner_uid):
            self._dependents.pop(owner_uid, None)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for dep_uid in list(self._dependents.get(owner_uid, ())):
            found = self._locate(dep_uid)
            if found is not None:
                self._orphan_one(found[0], found[1], owner_uid)

    def _orphan_one(self, spec: ResourceSpec, dep: Obj, owner_uid: str) -> None:
        new = clone(dep)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._commit(spec, self._key(spec, new), new, dep)

    def _check_dangling_owners(self, spec: ResourceSpec, obj: Obj) -> None:
        """The GC deletes objects whose owners are all gone (e.g. a wrong owner uid)."""
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs or self._has_live_owner(obj):
            return
        uid = obj["metadata"]["uid"]

        def collect() -> None:
            found = self._locate(uid)
            if found is not None and not self._has_live_owner(found[1]):
                meta = found[1]["metadata"]
                self.delete(found[0], meta.get("namespace"), meta["name"], {"propagationPolicy": "Background"})

        self._defer(0.2, collect)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for spec in self.registry.all():
            if not spec.namespaced or spec.version != (spec.storage_version or spec.version):
                continue
            for (ns, name), _obj in list(self._objects[spec.storage_key].items()):
                if ns == namespace and (ns, name) in self._objects[spec.storage_key]:
                    self.delete(spec, ns, name, {"propagationPolicy": "Background"})

    def _delete_crd_instances(self, crd: Obj) -> None:
        for spec in specs_from_crd(crd)[:1]:
            for ns, name in list(self._objects[spec.storage_key]):
                if (ns, name) in self._objects[spec.storage_key]:
                    self.delete(spec, ns, name, {"propagationPolicy": "Background"})

    def _finish(self, spec: ResourceSpec, obj: Obj, finalizer: str | None) -> None:
        new = clone(obj)
        if finalizer is not None:
            new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if new["metadata"].get("finalizers"):
            self._commit(spec, self._key(spec, new), new, obj)
        else:
            self._remove(spec, new, previous=obj)

    def _sweep(self) -> None:
        """Complete deletions that were waiting for contents or dependents to go away."""
        for (namespace, name), ns in list(self._objects[NAMESPACES.storage_key].items()):
            if ns["metadata"].get("deletionTimestamp") and not self._namespace_has_content(name):
                if (namespace, name) in self._objects[NAMESPACES.storage_key]:
                    self._finish(NAMESPACES, ns, None)
        for key, crd in list(self._objects[CRD_RESOURCE.storage_key].items()):
            if crd["metadata"].get("deletionTimestamp") and key in self._objects[CRD_RESOURCE.storage_key]:
                specs = specs_from_crd(crd)
                if not specs or not self._objects.get(specs[0].storage_key):
                    self._finish(CRD_RESOURCE, crd, None)
        for owner_uid in list(self._foreground):
            found = self._locate(owner_uid)
            if found is None:
                self._foreground.discard(owner_uid)
            elif not self._dependents.get(owner_uid):
                self._foreground.discard(owner_uid)
                self._finish(found[0], found[1], "foregroundDeletion")

    def _namespace_has_content(self, namespace: str) -> bool:
        for storage_key, bucket in self._objects.items():
            if storage_key == NAMESPACES.storage_key:
                continue
            if any(ns == namespace for ns, _ in bucket):
                return True
        return False

    # ---------------------------------------------------------------- CRDs

    def _prepare_crd(self, crd: Obj) -> None:
        try:
            specs = specs_from_crd(crd)
        except KeyError as e:
            raise errors.invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                _meta(crd).get("name", ""),
                [(f"spec.{e.args[0]}", "Required value")],
            ) from e
        expected = f"{specs[0].plural}.{specs[0].group}" if specs else None
        if expected and _meta(crd).get("name") != expected:
            raise errors.invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                _meta(crd).get("name", ""),
                [("metadata.name", 'Invalid value: must be spec.names.plural+"."+spec.group')],
            )
        names = crd["spec"]["names"]
        accepted = dict(names)
        accepted.setdefault("singular", names["kind"].lower())
        accepted.setdefault("listKind", f"{names['kind']}List")
        now = timestamp()
        crd["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [specs[0].storage_version] if specs and specs[0].storage_version else [],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
        }

    def _register_crd(self, crd: Obj) -> None:
        for spec in specs_from_crd(crd):
            self.registry.add(spec)

    # ---------------------------------------------------------------- kmock mirror

    def _mirror_version(self, spec: ResourceSpec, key: ObjKey, obj: Obj) -> None:
        if self._mirror is None:
            return
        mkey = (kmock.resource(*spec.storage_gvr), key[0], key[1])
        if mkey in self._mirror:
            self._mirror[mkey].history.append(obj)
        else:
            self._mirror[mkey] = obj

    def _mirror_removal(self, spec: ResourceSpec, key: ObjKey) -> None:
        if self._mirror is None:
            return
        mkey = (kmock.resource(*spec.storage_gvr), key[0], key[1])
        if mkey in self._mirror:
            self._mirror[mkey].delete()
