"""
Fault injection: make the next N requests matching a predicate fail (or stall).

A fault fires either *before* the request is processed (nothing changes, like
an overloaded API server) or *after* it (the change is committed, but the
client sees an error, like a timeout on the way back) — the latter is how
duplicate creations and retried-but-applied patches are provoked.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Literal

from .errors import REASONS, ApiError
from .history import RequestRecord

Predicate = Callable[[RequestRecord], bool]


@dataclasses.dataclass
class Fault:
    predicate: Predicate
    status: int
    times: int | None  # None = forever, until removed
    phase: Literal["before", "after"]
    message: str
    delay: float = 0.0
    retry_after: int | None = None
    hits: int = 0  # how many requests this fault has affected so far

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def error(self) -> ApiError:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return ApiError(self.status, self.message, reason=REASONS.get(self.status), headers=headers)


def match(
    *,
    verb: str | None = None,
    resource: str | None = None,
    group: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    user_agent: str | None = None,
) -> Predicate:
    """A predicate from keyword criteria (None means "any")."""

    def predicate(r: RequestRecord) -> bool:
        return all(
            (
                verb is None or r.verb == verb,
                resource is None or r.resource == resource,
                group is None or r.group == group,
                namespace is None or r.namespace == namespace,
                name is None or r.name == name,
                subresource is None or r.subresource == subresource,
                user_agent is None or user_agent in r.user_agent,
            )
        )

    return predicate


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        predicate: Predicate | None = None,
        *,
        status: int = 500,
        times: int | None = 1,
        phase: Literal["before", "after"] = "before",
        message: str | None = None,
        delay: float = 0.0,
        retry_after: int | None = None,
        **criteria: str,
    ) -> Fault:
        """
        Fail the next ``times`` requests that match ``predicate`` and/or the keyword criteria
        (``verb``, ``resource``, ``group``, ``namespace``, ``name``, ``subresource``, ``user_agent``).

        ``status=0`` with a ``delay`` only slows the requests down without failing them.
        """
        by_criteria = match(**criteria)
        combined: Predicate = by_criteria if predicate is None else (lambda r: predicate(r) and by_criteria(r))
        fault = Fault(
            predicate=combined,
            status=status,
            times=times,
            phase=phase,
            delay=delay,
            retry_after=retry_after,
            message=message or f"injected fault: {REASONS.get(status, status)}",
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, record: RequestRecord) -> Fault | None:
        """Claim the first active matching fault for this request (counted as a hit)."""
        if not self._faults:  # the fast path: no locking when nothing is injected
            return None
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.predicate(record):
                    fault.hits += 1
                    return fault
        return None
