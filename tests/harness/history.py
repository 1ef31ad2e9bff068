"""
A cheap, append-only record of every API request, with query helpers for assertions.

Recording is O(1) per request (unlike kmock's views, which re-scan all past requests),
and reading takes a snapshot, so tests can query it from any thread while the server runs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: Mapping[str, str]
    verb: str | None  # RBAC verb: get/list/watch/create/update/patch/delete/deletecollection
    group: str | None
    version: str | None
    resource: str | None  # plural, without the subresource
    subresource: str | None
    namespace: str | None
    name: str | None  # for creates: the name from the body (or the generated one)
    timestamp: float  # time.time()
    user_agent: str = ""
    content_type: str = ""
    status: int | None = None  # the HTTP status, filled when the response is ready
    fault: bool = False  # answered by fault injection, not by the emulator

    @property
    def rbac_resource(self) -> str | None:
        """``jobs`` or ``jobs/status``, as written in RBAC rules."""
        if self.resource is None:
            return None
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


class RequestHistory:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> int:
        with self._lock:
            self._records.append(record)
            return len(self._records) - 1

    def complete(self, index: int, status: int, *, name: str | None = None, fault: bool = False) -> None:
        with self._lock:
            record = self._records[index]
            if record.fault:
                return  # keep the injected outcome, not the error rendering that follows it
            changes: dict[str, Any] = {"status": status, "fault": fault}
            if name is not None and record.name is None:
                changes["name"] = name
            self._records[index] = dataclasses.replace(record, **changes)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records)

    def filter(
        self,
        predicate: Callable[[RequestRecord], bool] | None = None,
        *,
        verb: str | None = None,
        resource: str | None = None,
        group: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        main_only: bool = False,  # exclude subresource requests (status, log, ...)
        method: str | None = None,
        user_agent: str | None = None,  # substring match, e.g. 'kopf'
        succeeded: bool | None = None,  # 2xx only (True) or non-2xx only (False); not in-flight ones
    ) -> list[RequestRecord]:
        """Records matching all given criteria (None means "any")."""
        result = []
        for r in self.records:
            if verb is not None and r.verb != verb:
                continue
            if resource is not None and r.resource != resource:
                continue
            if group is not None and r.group != group:
                continue
            if namespace is not None and r.namespace != namespace:
                continue
            if name is not None and r.name != name:
                continue
            if subresource is not None and r.subresource != subresource:
                continue
            if main_only and r.subresource is not None:
                continue
            if method is not None and r.method != method.upper():
                continue
            if user_agent is not None and user_agent not in r.user_agent:
                continue
            if succeeded is not None and (r.status is None or (200 <= r.status < 300) != succeeded):
                continue  # requests still in flight are neither
            if predicate is not None and not predicate(r):
                continue
            result.append(r)
        return result

    def creates(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="create", **criteria)

    def patches(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="patch", **criteria)

    def updates(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="update", **criteria)

    def deletes(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="delete", **criteria)

    def gets(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="get", **criteria)

    def lists(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="list", **criteria)

    def watches(self, **criteria: Any) -> list[RequestRecord]:
        return self.filter(verb="watch", **criteria)

    def duplicates(self, *, verb: str = "create", **criteria: Any) -> dict[tuple[str | None, str | None], int]:
        """(namespace, name) pairs that were successfully hit more than once by ``verb``."""
        counts = Counter((r.namespace, r.name) for r in self.filter(verb=verb, succeeded=True, **criteria))
        return {key: n for key, n in counts.items() if n > 1}

    def rbac_triples(self, **criteria: Any) -> set[tuple[str, str, str]]:
        """(group, resource[/subresource], verb) as used; compare with an RBAC Role's rules."""
        return {
            (r.group or "", r.rbac_resource or "", r.verb or "")
            for r in self.filter(**criteria)
            if r.resource is not None and r.verb is not None
        }

    def durations_between(self, start: int, stop: int) -> float:
        """Wall-clock span between two request indexes; handy for throughput assertions."""
        records = self.records
        return records[stop].timestamp - records[start].timestamp
