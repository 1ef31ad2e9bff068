"""Faults around the operator, with the fast fake worker: a worker SIGKILLed mid-stage, bursts of 409 and
500 from the API server, Jobs running past their deadline, and all of it at once while the operator itself
is killed three times. Each test asserts the end state, and that no Job is orphaned or created twice."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.harness import eventually
from tests.operator.cluster import Cluster, fake_spec, free_port
from tests.reliability.reliability_kit import (
    CaseLedger,
    assert_no_orphaned_or_duplicated_jobs,
    metric_total,
    stalled,
    succeeded,
    wait_for_pid,
)

pytestmark = [pytest.mark.operator, pytest.mark.slow]


def test_worker_killed_mid_stage_is_retried_to_success(cluster: Cluster, shared_dir: Path, ledger: CaseLedger) -> None:
    kubelet = cluster.start_kubelet()
    cluster.start_operator()
    with ledger.fault("worker SIGKILLed mid-stage"):
        cluster.create("killed", fake_spec(shared_dir, model="sleep-1.5"))
        run = wait_for_pid(kubelet, "killed-g1-prepare-a1-")
        os.kill(run.pid, signal.SIGKILL)
        eventually(lambda: succeeded(cluster, "killed"), timeout=60, message=lambda: str(cluster.resource("killed")))
        assert run.exit_code == 128 + signal.SIGKILL
        prepare = cluster.resource("killed")["status"]["stages"][0]
        assert prepare["name"] == "prepare" and prepare["attempts"] == 2 and prepare["state"] == "succeeded"
        first = cluster.api.get("jobs", cluster.namespace, "killed-g1-prepare-a1")
        assert any(c["type"] == "Failed" and c["status"] == "True" for c in first["status"]["conditions"])
        assert_no_orphaned_or_duplicated_jobs(cluster)


def test_bursts_of_409_and_500_from_the_api_server(cluster: Cluster, shared_dir: Path, ledger: CaseLedger) -> None:
    cluster.start_kubelet()
    metrics_port = free_port()
    operator = cluster.start_operator(env={"OPTISMITH_METRICS_PORT": str(metrics_port)})
    faults = cluster.api.faults
    injected = [
        # The server is overloaded: nothing is created, the client sees 500.
        faults.inject(status=500, times=3, verb="create", resource="jobs"),
        # The create is committed but the answer is lost: a retry would meet 409 AlreadyExists.
        faults.inject(status=409, times=1, phase="after", verb="create", resource="jobs"),
        # Status writes fail for a while.
        faults.inject(status=500, times=3, verb="patch", resource="modeloptimizations", subresource="status"),
        faults.inject(status=500, times=2, verb="create", resource="events"),
    ]
    with ledger.fault("API server 500/409 burst", count=sum(f.times or 0 for f in injected)):
        cluster.create("bursty", fake_spec(shared_dir))
        eventually(
            lambda: succeeded(cluster, "bursty"),
            timeout=90,
            message=lambda: f"{cluster.resource('bursty')}\n{operator.logs()[-6000:]}",
        )
        assert all(f.exhausted for f in injected), [(f.status, f.hits) for f in injected]
        assert_no_orphaned_or_duplicated_jobs(cluster)
        names = sorted(j["metadata"]["name"] for j in cluster.jobs("bursty"))
        assert names == ["bursty-g1-finalize-a1", "bursty-g1-measure-cpu-a1", "bursty-g1-prepare-a1"]
        status = cluster.resource("bursty")["status"]
        assert all(s["attempts"] == 1 for s in status["stages"])  # API errors are not worker failures
        # The failed reconciliations are visible to whoever scrapes the operator.
        assert metric_total(metrics_port, "optismith_reconcile_errors_total") >= 3


def test_stage_deadline_exceeded_fails_after_max_attempts(
    cluster: Cluster, shared_dir: Path, ledger: CaseLedger
) -> None:
    kubelet = cluster.start_kubelet()
    cluster.start_operator()
    with ledger.fault("Job deadline exceeded", count=2):
        cluster.create(
            "late",
            fake_spec(
                shared_dir, model="sleep-30", execution={"stageDeadline": "1s", "backoff": "1s", "maxAttempts": 2}
            ),
        )
        failed = eventually(lambda: stalled(cluster, "late"), timeout=60, message=lambda: str(cluster.resource("late")))
        assert failed["reason"] == "DeadlineExceeded"
        assert "after 2 attempt(s)" in failed["message"]
        assert cluster.resource("late")["status"]["phase"] == "Failed"
        assert sorted(j["metadata"]["name"] for j in cluster.jobs("late")) == [
            "late-g1-prepare-a1",
            "late-g1-prepare-a2",
        ]
        # The Job controller killed the overdue workers: none is left running for 30 s.
        eventually(lambda: all(r.exit_code is not None or r.killed for r in kubelet.runs), timeout=20)
        assert_no_orphaned_or_duplicated_jobs(cluster)


def test_operator_killed_three_times_while_the_api_server_fails_and_a_worker_dies(
    cluster: Cluster, shared_dir: Path, ledger: CaseLedger
) -> None:
    kubelet = cluster.start_kubelet()
    operator = cluster.start_operator()
    faults = cluster.api.faults
    with (
        ledger.fault("operator SIGKILLed and restarted", count=3),
        ledger.fault("API server 500/409 burst", count=5),
        ledger.fault("worker SIGKILLed mid-stage"),
    ):
        cluster.create("chaos", fake_spec(shared_dir, model="sleep-1.5", execution={"backoff": "1s", "maxAttempts": 3}))
        faults.inject(status=500, times=4, verb="create", resource="jobs")
        faults.inject(status=409, times=1, phase="after", verb="create", resource="jobs")
        run = wait_for_pid(kubelet, "chaos-g1-prepare-a1-")
        os.kill(run.pid, signal.SIGKILL)  # the worker dies, and the operator with it
        operator.kill()
        operator.restart()
        for step in (2, 3):  # killed again while later Jobs exist
            eventually(
                lambda: len(cluster.jobs("chaos")) >= step + 1,
                timeout=60,
                message=lambda: str(cluster.resource("chaos")),
            )
            operator.kill()
            operator.restart()
        eventually(lambda: succeeded(cluster, "chaos"), timeout=120, message=lambda: str(cluster.resource("chaos")))
        assert_no_orphaned_or_duplicated_jobs(cluster)
        stages = {s["name"]: s for s in cluster.resource("chaos")["status"]["stages"]}
        assert stages["prepare"]["attempts"] == 2
        assert stages["measure-cpu"]["attempts"] == 1 and stages["finalize"]["attempts"] == 1
