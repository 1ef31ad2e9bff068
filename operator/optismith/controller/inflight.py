"""What the operator knows before its watches do, kept cheap at a thousand resources.

* Jobs it has just created: the Job index shows a Job only once its watch event arrives, and a
  reconcile in between (the timer, an update) would otherwise try to create it again and get a 409
  -- under load that was a third of all Job creations.
* The number of active Jobs for the concurrency cap: counting them walks every Job of every resource,
  so it is recounted at most every `ttl` seconds and bumped for each Job created in between. Between
  recounts the count can only be too high (Jobs that finished), never too low, so the cap holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]

CREATED_TTL_S = 60.0  # long after any watch event arrives; then a 409 settles it
ACTIVE_TTL_S = 1.0


class RecentCreations:
    def __init__(self, ttl: float = CREATED_TTL_S, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._created: dict[str, float] = {}

    def add(self, name: str) -> None:
        now = self.clock()
        self._created = {n: t for n, t in self._created.items() if now - t < self.ttl}
        self._created[name] = now

    def pending(self, name: str) -> bool:
        """Created by us moments ago and not yet seen in the index."""
        created = self._created.get(name)
        return created is not None and self.clock() - created < self.ttl

    def seen(self, names: Iterable[str]) -> None:
        """The index shows these Jobs now: it is the source of truth for them from here on."""
        for name in names:
            self._created.pop(name, None)

    def __len__(self) -> int:
        return len(self._created)


class ActiveJobs:
    def __init__(self, ttl: float = ACTIVE_TTL_S, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._counted_at: float | None = None
        self.total = 0
        self.gpu = 0

    def current(self, count: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        """(all, GPU) active Jobs; `count` walks the index and is called at most once per ttl."""
        now = self.clock()
        if self._counted_at is None or now - self._counted_at >= self.ttl:
            self.total, self.gpu = count()
            self._counted_at = now
        return self.total, self.gpu

    def created(self, gpu: bool) -> None:
        self.total += 1
        self.gpu += 1 if gpu else 0
