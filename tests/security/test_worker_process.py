"""Hostile models against a real worker process, whose environment holds S3 credentials from its start (as a pod's
does, so /proc/self/environ has them): the environment leak is refused and leaves no credential in the run; with
the op allowed it would have. A model that ends the process (Abort) still leaves a failure record and a
termination message that the operator reads as a failure, even when the process exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optismith.controller.observe import job_view
from optismith.results import StageRecord, TerminationMessage
from tests.security import hostile
from tests.security.kit import ENV_SECRET, files_holding, plant, run_in_a_worker, write_manifest

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _job(succeeded: bool) -> dict[str, object]:
    return {"name": "m-g1-prepare-a1", "generation": 1, "phase": "prepare", "target": None, "attempt": 1,
            "created": None, "started": None, "finished": None, "succeeded": succeeded, "failed": not succeeded,
            "failed_reason": "", "failed_message": "", "active": 0, "gpu": False, "deleting": False}


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed (the control)"])
def test_the_environment_leak_is_refused_and_would_have_leaked_the_credentials(tmp_path: Path, allowed: bool) -> None:
    planted = plant(tmp_path)
    model = hostile.table_leak_savedmodel(tmp_path / "model", "/proc/self/environ")
    run_dir = tmp_path / "runs" / "gen-1"
    overrides = {"security": {"allowOps": ["InitializeTableFromTextFileV2"]}} if allowed else {}
    done = run_in_a_worker(write_manifest(tmp_path / "m.yaml", model, run_dir, overrides), run_dir,
                           tmp_path / "termination-log")
    leaks = files_holding(run_dir, planted.needles) + files_holding(tmp_path / "termination-log", planted.needles)
    if allowed:
        assert done.returncode == 0, done.stderr
        assert any("samples/outputs.npz" in leak and ENV_SECRET[:24] in leak for leak in leaks), leaks
    else:
        assert done.returncode == 8, done.stderr
        assert "InitializeTableFromTextFileV2" in done.stderr and leaks == []


@pytest.mark.parametrize("exit_without_error", [True, False], ids=["exit(0)", "abort()"])
def test_a_model_that_ends_the_process_leaves_a_failure_the_operator_reads(
    tmp_path: Path, exit_without_error: bool
) -> None:
    """With Abort allowed (the scan refuses it by default), the model ends the worker in the middle of inspect."""
    model = hostile.abort_savedmodel(tmp_path / "model", exit_without_error=exit_without_error)
    run_dir = tmp_path / "runs" / "gen-1"
    log = tmp_path / "termination-log"
    done = run_in_a_worker(write_manifest(tmp_path / "m.yaml", model, run_dir, {"security": {"allowOps": ["Abort"]}}),
                           run_dir, log)
    assert "inspect: succeeded" not in done.stdout
    assert (done.returncode == 0) == exit_without_error, (done.returncode, done.stderr[-2000:])
    record = StageRecord.model_validate_json((run_dir / "stages" / "inspect.json").read_bytes())
    assert (record.status, record.error_reason) == ("failed", "StageCrashed")
    message = TerminationMessage.model_validate_json(log.read_text())
    assert (message.status, message.reason) == ("failed", "StageCrashed")
    pod = {"created": "t", "termination_message": log.read_text(), "exit_code": done.returncode}
    view = job_view(_job(succeeded=done.returncode == 0), [pod])
    assert view.state == "failed" and view.reason == "StageCrashed", view
    assert json.loads(log.read_text())["stages"] == []
