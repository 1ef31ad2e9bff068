"""
Minimal HTTP clients for the emulator: a blocking one for tests, an asyncio one for components.

They speak plain Kubernetes REST (no discovery, no models) so that they exercise the
emulator the same way any real client does.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/namespaces/ns/pods/name/status``-style paths from an apiVersion and a plural."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace is not None:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name is not None:
        parts.append(name)
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


class ApiStatusError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        reason = body.get("reason") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.body = body


@dataclasses.dataclass
class Response:
    status: int
    text: str
    headers: Mapping[str, str]

    @property
    def data(self) -> Any:
        return json.loads(self.text) if self.text else None


class SyncClient:
    """Blocking client: usable from plain (non-async) tests while the server runs in its thread."""

    def __init__(self, base_url: str, *, user_agent: str = "harness-test-client", timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method.upper())
        req.add_header("User-Agent", self.user_agent)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Response(resp.status, resp.read().decode(), dict(resp.headers))
        except urllib.error.HTTPError as e:
            return Response(e.code, e.read().decode(), dict(e.headers))

    def _checked(self, response: Response) -> Any:
        if not 200 <= response.status < 300:
            try:
                body = response.data
            except ValueError:
                body = response.text
            raise ApiStatusError(response.status, body)
        return response.data

    def get(self, path: str, **params: Any) -> Any:
        return self._checked(self.request("GET", path, params=params))

    def create(self, path: str, body: Any) -> Any:
        return self._checked(self.request("POST", path, body))

    def replace(self, path: str, body: Any) -> Any:
        return self._checked(self.request("PUT", path, body))

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Any:
        return self._checked(self.request("PATCH", path, body, content_type=content_type))

    def delete(self, path: str, body: Any = None, **params: Any) -> Any:
        return self._checked(self.request("DELETE", path, body, params=params))

    def stream(self, path: str, *, timeout: float = 10, **params: Any) -> Iterator[dict[str, Any]]:
        """A watch stream's events as they arrive (``watch=true`` is added); ends when the server ends it."""
        query = urllib.parse.urlencode({"watch": "true", **{k: v for k, v in params.items() if v is not None}})
        req = urllib.request.Request(f"{self.base_url}{path}?{query}", headers={"User-Agent": self.user_agent})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            for line in resp:
                if line.strip():
                    yield json.loads(line)


class AsyncClient:
    """An aiohttp client for components (the kubelet) running on their own event loop."""

    def __init__(self, base_url: str, *, user_agent: str = "harness-async-client") -> None:
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("The client is not entered.")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Content-Type": content_type} if body is not None else {}
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, self.base_url + path, data=data, params=params, headers=headers
        ) as resp:
            text = await resp.text()
            payload = json.loads(text) if text and resp.content_type == "application/json" else text
            if not 200 <= resp.status < 300:
                raise ApiStatusError(resp.status, payload)
            return payload

    async def get(self, path: str, **params: str) -> Any:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Any:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, body: Any = None) -> Any:
        return await self.request("DELETE", path, body)

    async def watch(self, path: str, **params: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """
        List, then watch from the list's resourceVersion; re-list on 410 Gone. Never ends.

        Yields ``('SYNCED', {})`` after each (re-)listing, like an informer's "has synced".
        """
        while True:
            listing = await self.get(path, **params)
            rv = listing["metadata"]["resourceVersion"]
            for item in listing["items"]:
                yield "ADDED", item
            yield "SYNCED", {}
            gone = False
            while not gone:
                query = dict(params, watch="true", resourceVersion=rv, allowWatchBookmarks="true")
                async with self.session.get(
                    self.base_url + path, params=query, timeout=aiohttp.ClientTimeout(total=None)
                ) as resp:
                    if resp.status != 200:
                        raise ApiStatusError(resp.status, await resp.text())
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            gone = obj.get("code") == 410
                            if not gone:
                                raise ApiStatusError(obj.get("code", 500), obj)
                            break
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if event["type"] != "BOOKMARK":
                            yield event["type"], obj
                # A stream closed by the server (timeouts, restarts) is resumed from the last rv.
