"""Shared pieces of the reliability suites: the ledger the figures in docs/reliability.md come from, the
operator test cluster (tests/operator/cluster.py), and the end-state checks every fault test makes."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness import process_alive

LEDGER_ENV = "OPTISMITH_RELIABILITY_LEDGER"


# --- the ledger ----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the suites did: faults injected (and whether the system reached its asserted end state),
    bad inputs tried, and every run directory checked for lost artifacts."""

    faults: list[dict[str, Any]] = field(default_factory=list)
    bad_inputs: Counter[str] = field(default_factory=Counter)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def write(self, path: Path) -> None:
        document = {"faults": self.faults, "bad_inputs": dict(self.bad_inputs), "runs": self.runs}
        path.write_text(json.dumps(document, indent=1, sort_keys=True))


@dataclass
class CaseLedger:
    """The ledger as one test sees it (entries carry the test's id)."""

    ledger: Ledger
    test: str

    @contextlib.contextmanager
    def fault(self, kind: str, count: int = 1) -> Iterator[None]:
        """Count `count` injections of `kind`; they are 'survived' only if the block (which must assert the
        end state) completes."""
        entry = {"kind": kind, "count": count, "test": self.test, "survived": False}
        self.ledger.faults.append(entry)
        yield
        entry["survived"] = True

    def bad_input(self, category: str, count: int = 1) -> None:
        self.ledger.bad_inputs[category] += count

    def check_run(self, store: Any) -> str:
        """'complete' (a manifest whose every digest verifies), 'incomplete' (no manifest: the run does not
        look complete), or 'lost' (a manifest that does not match the files: artifacts were lost)."""
        from optismith.errors import IncompleteRunError
        from optismith.runs.layout import MANIFEST as MANIFEST_KEY
        from optismith.runs.manifest import verify_manifest

        if not store.exists(MANIFEST_KEY):
            state = "incomplete"
        else:
            try:
                verify_manifest(store)
                state = "complete"
            except IncompleteRunError:
                state = "lost"
        self.ledger.runs.append({"run": store.uri, "state": state, "test": self.test})
        return state


# --- end states ----------------------------------------------------------------------------------


def condition(cluster: Any, name: str, type_: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = cluster.condition(name, type_)
    return found


def succeeded(cluster: Any, name: str) -> bool:
    found = condition(cluster, name, "Succeeded")
    return bool(found and found["status"] == "True")


def stalled(cluster: Any, name: str) -> dict[str, Any] | None:
    """The Stalled condition once it is True (a failed or invalid resource), else None."""
    found = condition(cluster, name, "Stalled")
    return found if found and found["status"] == "True" else None


def orphaned_jobs(cluster: Any) -> list[str]:
    """Jobs whose owning ModelOptimization does not exist (by uid, so a re-created namesake does not count)."""
    owners = {r["metadata"]["uid"] for r in cluster.api.list("modeloptimizations", cluster.namespace)}
    orphans = []
    for job in cluster.api.list("jobs", cluster.namespace):
        refs = job["metadata"].get("ownerReferences") or []
        if not any(ref.get("kind") == "ModelOptimization" and ref.get("uid") in owners for ref in refs):
            orphans.append(job["metadata"]["name"])
    return orphans


def assert_no_orphaned_or_duplicated_jobs(cluster: Any) -> None:
    assert not orphaned_jobs(cluster), f"orphaned Jobs: {orphaned_jobs(cluster)}"
    duplicates = cluster.api.history.duplicates(resource="jobs")
    assert not duplicates, f"Jobs created more than once: {duplicates}"
    # Names are deterministic, so one Job per (resource, generation, step, attempt) is one Job per name;
    # check the labels agree, in case a name was ever derived differently.
    keys = Counter()
    for job in cluster.api.list("jobs", cluster.namespace):
        labels = job["metadata"]["labels"]
        owner = next(ref["uid"] for ref in job["metadata"]["ownerReferences"])
        keys[
            (
                owner,
                labels["optismith.io/generation"],
                labels["optismith.io/phase"],
                labels.get("optismith.io/target"),
                labels["optismith.io/attempt"],
            )
        ] += 1
    assert all(n == 1 for n in keys.values()), f"several Jobs for one step attempt: {keys}"


def metric_total(port: int, name: str) -> float:
    """Sum of a Prometheus counter over all its label sets, scraped from the operator."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+)$", line)
        if match:
            total += float(match.group(2))
    return total


def wait_for_pid(kubelet: Any, pod_prefix: str, timeout: float = 60) -> Any:
    """The kubelet's record of the first pod whose name starts with `pod_prefix`, once its process runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in kubelet.runs:
            if run.name.startswith(pod_prefix) and run.pid and run.exit_code is None and process_alive(run.pid):
                return run
        time.sleep(0.02)
    raise AssertionError(f"no running pod {pod_prefix}* within {timeout}s: {[r.name for r in kubelet.runs]}")
