"""
Watch streams: per-watcher filtering with the real server's selector transitions.

When a change makes an object start or stop matching a watcher's selectors,
the real server reports ADDED or DELETED to that watcher, not MODIFIED.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from .resources import ResourceSpec, StorageKey
from .selectors import ObjectFilter

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    rv: int
    key: StorageKey
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


class Watcher:
    """One watch request: a queue fed synchronously by the store, drained by the HTTP stream."""

    CLOSED: tuple[str, Obj] = ("CLOSED", {})

    def __init__(self, spec: ResourceSpec, flt: ObjectFilter) -> None:
        self.spec = spec
        self.filter = flt
        self.queue: asyncio.Queue[tuple[str, Obj]] = asyncio.Queue()

    def translate(self, event: WatchEvent) -> list[tuple[str, Obj]]:
        old_match = event.old is not None and self.filter.matches(event.old)
        new_match = self.filter.matches(event.obj)
        obj = event.obj
        if obj.get("apiVersion") != self.spec.api_version:
            obj = dict(obj, apiVersion=self.spec.api_version)
        if event.type == "DELETED":
            return [("DELETED", obj)] if (old_match or new_match) else []
        if event.type == "ADDED":
            return [("ADDED", obj)] if new_match else []
        if old_match and new_match:
            return [("MODIFIED", obj)]
        if new_match:
            return [("ADDED", obj)]
        if old_match:
            return [("DELETED", obj)]
        return []

    def offer(self, event: WatchEvent) -> None:
        for item in self.translate(event):
            self.queue.put_nowait(item)

    def close(self) -> None:
        self.queue.put_nowait(self.CLOSED)
