"""
A Kubernetes API server emulator: kmock's ``KubernetesEmulator`` with real-server semantics.

kmock provides the foundation — the aiohttp handler protocol, the ``objects`` view
with per-object version history for assertions, and the request/reaction DSL for
ad-hoc overrides (``emulator['get /apis/x'] << 500``). This class replaces kmock's
request routing and fallback reactions (which mis-parse ``/api/v1/namespaces``, keep
no resourceVersions, lose watch events, and re-scan every past request on every new
one) with a store that behaves like the real API server (see ``store.py``).

The handler is loop-bound: run it through :class:`harness.serving.ApiServer`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock

from . import discovery, errors
from .errors import ApiError
from .faults import FaultInjector
from .history import RequestHistory, RequestRecord
from .patches import decode_patch
from .paths import ApiPath, guess_verb, parse_path
from .resources import CRD_RESOURCE, NAMESPACES, ResourceRegistry, ResourceSpec
from .selectors import FieldSelector, LabelSelector, ObjectFilter
from .store import ObjectStore
from .watching import Watcher

logger = logging.getLogger(__name__)

# (namespace, pod, container, query) -> the log text, or None if that source does not know the pod.
LogSource = Callable[[str, str, str | None, Mapping[str, str]], str | None]

_KMOCK_ACTIONS = {
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "get": kmock.action.FETCH,
    "create": kmock.action.CREATE,
    "patch": kmock.action.UPDATE,
    "update": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _json(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(payload).encode(), status=status, content_type="application/json", headers=headers
    )


@attrs.define(kw_only=True)
class KubernetesApiEmulator(kmock.KubernetesEmulator):
    registry: ResourceRegistry = attrs.field(factory=ResourceRegistry)
    history: RequestHistory = attrs.field(factory=RequestHistory)
    faults: FaultInjector = attrs.field(factory=FaultInjector)
    bookmark_interval: float | None = 10.0  # seconds between BOOKMARKs on idle watches, if allowed
    event_window: int = 10_000  # watch events kept for resumption; older resourceVersions get 410 Gone
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    log_sources: list[LogSource] = attrs.field(factory=list)
    store: ObjectStore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Deliberately not calling the parent's post-init: its fallback reactions are replaced by
        # _dispatch() below, so self._payloads holds only the user's own kmock reactions (if any).
        self.store = ObjectStore(self.registry, mirror=self._objects, event_window=self.event_window, defer=self._defer)
        for name in self.namespaces:
            self.store.create(NAMESPACES, None, {"metadata": {"name": name}})

    @staticmethod
    def _defer(delay: float, fn: Callable[[], None]) -> None:
        try:
            asyncio.get_running_loop().call_later(delay, fn)
        except RuntimeError:  # not on the loop (e.g. in a unit test of the store): do it now
            fn()

    # ------------------------------------------------------------ direct (non-HTTP) access

    def register_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create a CRD as ``kubectl apply`` would (must run on the server loop; see ApiServer)."""
        name = (crd.get("metadata") or {}).get("name", "")
        existing = self.store.find(CRD_RESOURCE, None, name)
        if existing is None:
            return self.store.create(CRD_RESOURCE, None, dict(crd))
        body = dict(crd, metadata=dict(crd.get("metadata") or {}, resourceVersion=None))
        return self.store.replace(CRD_RESOURCE, None, name, body)

    def spec_for(self, resource: str) -> ResourceSpec:
        """Find a served resource by 'plural', 'plural.group', 'group/version/plural', kind or short name."""
        wanted = resource.lower()
        for spec in self.registry.all():
            names = {
                spec.plural,
                spec.singular,
                spec.kind.lower(),
                *spec.shortnames,
                f"{spec.plural}.{spec.group}",
                f"{spec.group}/{spec.version}/{spec.plural}",
                f"{spec.api_version}/{spec.plural}",
            }
            if wanted in names:
                return spec
        raise KeyError(f"unknown resource: {resource}")

    # ------------------------------------------------------------ HTTP entry point

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw.read()
        path = parse_path(raw.path)
        query = dict(raw.query)
        verb = guess_verb(raw.method, path, query)
        name = path.name
        if verb == "create" and path.subresource is None and body:
            name = self._name_in_body(body)
        record = RequestRecord(
            method=raw.method,
            path=raw.path,
            query=query,
            verb=verb,
            group=path.group,
            version=path.version,
            resource=path.plural,
            subresource=path.subresource,
            namespace=path.namespace,
            name=name,
            timestamp=time.time(),
            user_agent=raw.headers.get("User-Agent", ""),
            content_type=raw.headers.get("Content-Type", ""),
        )
        index = self.history.append(record)
        try:
            return await self._respond(raw, path, verb, query, body, record, index)
        except asyncio.CancelledError:  # the client went away mid-request (e.g. closed a watch)
            self.history.complete(index, 200 if verb == "watch" else 499)
            raise

    async def _respond(
        self,
        raw: aiohttp.web.BaseRequest,
        path: ApiPath,
        verb: str | None,
        query: dict[str, str],
        body: bytes,
        record: RequestRecord,
        index: int,
    ) -> aiohttp.web.StreamResponse:
        created_name: str | None = None
        try:
            fault = self.faults.take(record)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.phase == "before" and fault.status:
                self.history.complete(index, fault.status, fault=True)
                raise fault.error()
            response = await self._via_kmock(raw, path, verb, body)
            if response is None:
                response, created_name = await self._dispatch(
                    raw, path, verb, query, body, started=lambda: self.history.complete(index, 200)
                )
            if fault is not None and fault.phase == "after" and fault.status and not response.prepared:
                self.history.complete(index, fault.status, name=created_name, fault=True)
                raise fault.error()
        except ApiError as e:
            response = _json(e.status(), e.code, e.headers)
        except Exception as e:  # a bug in the emulator: report it like a real 500, and log it
            logger.exception("Emulator failure on %s %s", raw.method, raw.path)
            response = _json(ApiError(500, f"emulator failure: {e!r}").status(), 500)
        self.history.complete(index, response.status, name=created_name)
        return response

    @staticmethod
    def _name_in_body(body: bytes) -> str | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        meta = data.get("metadata") if isinstance(data, dict) else None
        return meta.get("name") if isinstance(meta, dict) else None

    async def _via_kmock(
        self, raw: aiohttp.web.BaseRequest, path: ApiPath, verb: str | None, body: bytes
    ) -> aiohttp.web.StreamResponse | None:
        """Serve user-defined kmock reactions first, if any are declared (rarely: it costs O(n))."""
        if not self._payloads:
            return None
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            body=body,
            text=body.decode(errors="replace"),
            data=data,
            action=_KMOCK_ACTIONS.get(verb or ""),
            resource=kmock.resource(path.group, path.version, path.plural) if path.group is not None else None,
            namespace=path.namespace,
            name=path.name,
            subresource=path.subresource,
        )
        self._requests.append(request)
        try:
            return await kmock.RawHandler._handle(self, request)
        except NotImplementedError:
            return None

    # ------------------------------------------------------------ routing

    async def _dispatch(
        self,
        raw: aiohttp.web.BaseRequest,
        path: ApiPath,
        verb: str | None,
        query: dict[str, str],
        body: bytes,
        *,
        started: Callable[[], None] = lambda: None,
    ) -> tuple[aiohttp.web.StreamResponse, str | None]:
        if not path.is_resource:
            return self._serve_meta(raw), None
        spec = self.registry.find(path.group or "", path.version or "", path.plural or "")
        if spec is None:
            raise errors.resource_not_found()
        if path.namespace is not None and not spec.namespaced:
            raise errors.resource_not_found()
        if path.name is not None and spec.namespaced and path.namespace is None:
            raise errors.resource_not_found()
        if path.subresource is not None and path.subresource not in spec.subresources:
            raise errors.resource_not_found()
        dry_run = "All" in query.get("dryRun", "")

        if path.subresource == "log":
            return self._serve_log(spec, path, query), None
        if path.subresource == "binding":
            return self._serve_binding(spec, path, body), None
        if verb == "watch":
            return await self._stream_watch(raw, spec, self._filter(path, query), query, started), None
        if verb == "list":
            result = self.store.list_objects(
                spec,
                self._filter(path, query),
                limit=int(query.get("limit") or 0) or None,
                continue_token=query.get("continue") or None,
            )
            if discovery.wants_table(raw.headers.get("Accept", "")) and spec.printer_columns:
                return _json(discovery.table(spec, result.items, result.resource_version)), None
            meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
            if result.continue_token:
                meta["continue"] = result.continue_token
                meta["remainingItemCount"] = result.remaining
            return _json(
                {
                    "apiVersion": spec.api_version,
                    "kind": f"{spec.kind}List",
                    "metadata": meta,
                    "items": result.items,
                }
            ), None
        assert path.name is not None or verb in ("create", "deletecollection")
        if verb == "get":
            obj = self.store.get(spec, path.namespace, path.name or "")
            if discovery.wants_table(raw.headers.get("Accept", "")) and spec.printer_columns:
                return _json(discovery.table(spec, [obj], self.store.rv)), None
            return _json(obj), None
        if verb == "create":
            if spec.namespaced and path.namespace is None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            if path.name is not None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            obj = self.store.create(spec, path.namespace, self._decode(body), dry_run=dry_run)
            return _json(obj, 201), obj["metadata"]["name"]
        if verb == "update":
            obj = self.store.replace(
                spec,
                path.namespace,
                path.name or "",
                self._decode(body),
                subresource=path.subresource,
                dry_run=dry_run,
            )
            return _json(obj), None
        if verb == "patch":
            content_type = raw.headers.get("Content-Type", "")
            patch = decode_patch(content_type, body)
            obj, created = self.store.patch(
                spec,
                path.namespace,
                path.name or "",
                content_type,
                patch,
                subresource=path.subresource,
                dry_run=dry_run,
            )
            return _json(obj, 201 if created else 200), None
        if verb == "delete":
            options = self._delete_options(body, query)
            obj, _gone = self.store.delete(spec, path.namespace, path.name or "", options, dry_run=dry_run)
            headers = {}
            if (spec.group, spec.plural) == ("batch", "jobs") and "propagationPolicy" not in options:
                headers["Warning"] = (
                    '299 - "child pods are preserved by default when jobs are deleted; '
                    "set propagationPolicy=Background to remove them or set "
                    'propagationPolicy=Orphan to suppress this warning"'
                )
            return _json(obj, headers=headers), None
        if verb == "deletecollection":
            items = self.store.delete_collection(spec, self._filter(path, query), self._delete_options(body, query))
            return _json(
                {
                    "apiVersion": spec.api_version,
                    "kind": f"{spec.kind}List",
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": items,
                }
            ), None
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _serve_meta(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        route = raw.path.rstrip("/") or "/"
        if raw.method not in ("GET", "HEAD"):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if route in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if route == "/version":
            return _json(discovery.VERSION_INFO)
        if route == "/api":
            return _json(discovery.api_versions())
        if route == "/apis":
            return _json(discovery.api_group_list(self.registry))
        if route == "/":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/version"]
            paths += [f"/apis/{g}/{v}" for g, vs in self.registry.groups().items() if g for v in vs]
            return _json({"paths": sorted(paths)})
        path = parse_path(route)
        if path.group is not None and path.version is not None and not path.legacy_watch:
            return _json(discovery.api_resource_list(self.registry, path.group, path.version))
        if path.group:
            return _json(discovery.api_group(self.registry, path.group))
        raise ApiError(404, "the server could not find the requested resource", details={})

    @staticmethod
    def _decode(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, f"the body of the request is not valid JSON: {e}") from e

    @staticmethod
    def _delete_options(body: bytes, query: Mapping[str, str]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if body:
            try:
                decoded = json.loads(body)
            except ValueError as e:
                raise ApiError(400, f"invalid DeleteOptions: {e}") from e
            if isinstance(decoded, dict):
                options.update(decoded)
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if policy := options.get("propagationPolicy"):
            if policy not in ("Orphan", "Background", "Foreground"):
                raise ApiError(
                    422,
                    f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                )
        return options

    @staticmethod
    def _filter(path: ApiPath, query: Mapping[str, str]) -> ObjectFilter:
        return ObjectFilter(
            namespace=path.namespace,
            name=path.name,
            labels=LabelSelector.parse(query.get("labelSelector")),
            fields=FieldSelector.parse(query.get("fieldSelector")),
        )

    # ------------------------------------------------------------ special endpoints

    def _serve_log(self, spec: ResourceSpec, path: ApiPath, query: Mapping[str, str]) -> aiohttp.web.Response:
        pod = self.store.get(spec, path.namespace, path.name or "")
        container = query.get("container")
        text: str | None = None
        for source in self.log_sources:
            text = source(path.namespace or "", path.name or "", container, query)
            if text is not None:
                break
        if text is None:
            first = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            raise ApiError(
                400,
                f'container "{container or first}" in pod "{path.name}" is waiting to start: ContainerCreating',
            )
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else ""
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    def _serve_binding(self, spec: ResourceSpec, path: ApiPath, body: bytes) -> aiohttp.web.Response:
        binding = self._decode(body) or {}
        node = (binding.get("target") or {}).get("name")
        if not node:
            raise errors.invalid("Binding", "", path.name or "", [("target.name", "Required value")])
        pod = self.store.get(spec, path.namespace, path.name or "")
        if (pod.get("spec") or {}).get("nodeName"):
            raise errors.conflict(
                spec.plural,
                spec.group,
                path.name or "",
                f'pod {path.name} is already assigned to node "{pod["spec"]["nodeName"]}"',
            )
        self.store.patch(
            spec,
            path.namespace,
            path.name or "",
            "application/merge-patch+json",
            {"spec": {"nodeName": node}},
        )
        return _json(errors.success_status(spec.plural, spec.group, path.name or ""), 201)

    async def _stream_watch(
        self,
        raw: aiohttp.web.BaseRequest,
        spec: ResourceSpec,
        flt: ObjectFilter,
        query: Mapping[str, str],
        started: Callable[[], None],
    ) -> aiohttp.web.StreamResponse:
        since_text = query.get("resourceVersion") or ""
        initial = query.get("sendInitialEvents", "").lower() == "true"
        bookmarks = query.get("allowWatchBookmarks", "").lower() == "true"
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        watcher = Watcher(spec, flt)
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            since = None if since_text in ("", "0") else int(since_text)
            first = self.store.subscribe(spec, flt, watcher, since=since, initial=initial)
        except ValueError:
            raise ApiError(400, f"invalid resourceVersion: {since_text!r}") from None
        except ApiError as e:  # e.g. 410 Gone: a real server reports it inside a 200 stream
            await response.prepare(raw)
            await response.write(json.dumps({"type": "ERROR", "object": e.status()}).encode() + b"\n")
            await response.write_eof()
            return response

        async def send(kind: str, obj: Mapping[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        def bookmark(annotations: dict[str, str] | None = None) -> dict[str, Any]:
            meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
            if annotations:
                meta["annotations"] = annotations
            return {"kind": spec.kind, "apiVersion": spec.api_version, "metadata": meta}

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            await response.prepare(raw)
            started()  # the history shows open watches as 200, as the client already sees them
            for kind, obj in first:
                await send(kind, obj)
            if initial:
                await send("BOOKMARK", bookmark({"k8s.io/initial-events-end": "true"}))
            while True:
                waits = [
                    w
                    for w in (
                        None if deadline is None else deadline - loop.time(),
                        self.bookmark_interval if bookmarks else None,
                    )
                    if w is not None
                ]
                try:
                    kind, obj = await asyncio.wait_for(watcher.queue.get(), min(waits) if waits else None)
                except TimeoutError:
                    if deadline is not None and loop.time() >= deadline:
                        break
                    await send("BOOKMARK", bookmark())
                    continue
                if (kind, obj) == Watcher.CLOSED:
                    break
                await send(kind, obj)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away; nothing to tell it
        finally:
            self.store.unsubscribe(watcher)
        return response
