"""Separation of duties on one machine: a stage that runs the model gets no credentials, no network and no
host files, however hard it tries; and a model that ends or hangs its process still leaves a failure record.

The attacks run as real stages of the real execute step (tests/pipeline/hostile_child.py), started by a
supervisor that holds a secret in its initial environment -- where /proc/<pid>/environ shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.pipeline.sandbox import choose_mechanism, unavailable

ROOT = Path(__file__).resolve().parents[2]
SECRET = "wJalrXUtnFEMI-separation-test-secret-K7MDENG"


class Listener:
    """A TCP server on 127.0.0.1 that counts who connected."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.server.close()


@pytest.fixture
def listener() -> Any:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def outside() -> Any:
    """A host path outside the scratch dir and outside /tmp (which bwrap replaces with a private tmpfs)."""
    path = Path("/var/tmp") / f"optismith-separation-{uuid.uuid4().hex}" / "pwned.txt"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def drive(tmp_path: Path, mode: str, mechanism: str, port: int = 0, deadline: str = "120",
          outside: Path | None = None) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Stage the hostile 'model', run prepare confined, upload; (the execute result, the driver's output)."""
    attack = tmp_path / "model" / "attack.json"
    attack.parent.mkdir(parents=True, exist_ok=True)
    attack.write_text(json.dumps({"mode": mode, "secret": SECRET, "port": port,
                                  "outside": str(outside or tmp_path / "outside" / "pwned.txt")}))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "hostile"},
        "spec": {"model": {"uri": str(attack)}, "output": {"uri": str(tmp_path / "runs")}}}))
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": "AKIASEPARATIONTEST",
           "PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.hostile_child", "--drive", str(tmp_path / "scratch"), str(manifest),
         str(tmp_path / "run"), mechanism, deadline],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def run_files(tmp_path: Path) -> dict[str, bytes]:
    run = tmp_path / "run"
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def strong_mechanisms() -> list[Any]:
    return [pytest.param(m, marks=pytest.mark.skipif(bool(unavailable(m)), reason=str(unavailable(m))))
            for m in ("bwrap", "unshare")]


@pytest.mark.parametrize("mechanism", strong_mechanisms())
def test_a_hostile_stage_gets_no_secret_no_network_and_cannot_write_outside(
    tmp_path: Path, listener: Listener, outside: Path, mechanism: str
) -> None:
    result, driver = drive(tmp_path, "attack", mechanism, port=listener.port, outside=outside)
    assert result["status"] == "succeeded", result
    record = json.loads((tmp_path / "run" / "stages" / "inspect.json").read_text())
    found = record["payload"]["found"]
    assert found["env"] == [], "the secret reached the stage's environment"
    assert found["proc"] == [], "the secret was read from another process's /proc/<pid>/environ"
    assert found["tcp"] != "connected" and listener.accepted == 0, found["tcp"]
    assert found["outside"] != "written" and not outside.exists()
    assert found["inputs"] != "written"
    assert json.loads((tmp_path / "model" / "attack.json").read_text())["mode"] == "attack"
    isolation = record["isolation"]
    assert (isolation["mechanism"], isolation["network"], isolation["credentials"]) == (mechanism, "none", "absent")
    assert not [n for n in isolation["environment"] if n.startswith("AWS_")]
    # Nothing of the secret anywhere in the run; the libraries' lines in the stage's log, not on the terminal.
    files = run_files(tmp_path)
    assert not [k for k, v in files.items() if SECRET.encode() in v]
    log = files["logs/inspect.log"].decode()
    assert "native absl warning" in log and "tensorflow/core" in log and "printing to stdout" in log
    assert "native absl warning" not in driver.stdout + driver.stderr
    assert "progress: attacking" in driver.stdout  # progress came over the pipe


def test_without_a_sandbox_the_isolation_is_recorded_as_weak_and_the_attack_shows(
    tmp_path: Path, listener: Listener, outside: Path
) -> None:
    # The same attack with only a scrubbed environment: the environment is clean, but the network and the
    # host are open -- the record says so (and this shows the attack above is real).
    result, _ = drive(tmp_path, "attack", "none", port=listener.port, outside=outside)
    record = json.loads((tmp_path / "run" / "stages" / "inspect.json").read_text())
    found = record["payload"]["found"]
    assert found["env"] == [] and found["tcp"] == "connected" and listener.accepted == 1
    assert outside.read_text() == "pwned"
    isolation = record["isolation"]
    assert (isolation["mechanism"], isolation["network"], isolation["filesystem"], isolation["processes"]) == (
        "none", "shared", "unrestricted", "shared")
    assert result["isolation"]["mechanism"] == "none"


@pytest.mark.parametrize("mechanism", [pytest.param(choose_mechanism()[0], id="strongest")])
def test_a_model_that_ends_its_process_with_exit_code_0_still_fails_with_a_record(
    tmp_path: Path, mechanism: str
) -> None:
    result, _ = drive(tmp_path, "abort", mechanism)
    assert result["status"] == "failed" and result["reason"] == "StageFailed", result
    assert "exit code 0 without a result" in result["message"]
    record = json.loads((tmp_path / "run" / "stages" / "inspect.json").read_text())
    assert record["status"] == "failed" and record["isolation"]["mechanism"] == mechanism
    assert not (tmp_path / "run" / "stages" / "freeze.json").exists()


def test_a_stage_that_runs_past_the_deadline_is_stopped_with_a_record(tmp_path: Path) -> None:
    result, _ = drive(tmp_path, "hang", choose_mechanism()[0], deadline="3")
    assert result["status"] == "failed" and "stageDeadline" in result["message"], result
    record = json.loads((tmp_path / "run" / "stages" / "inspect.json").read_text())
    assert record["status"] == "failed" and "stageDeadline" in record["message"]
