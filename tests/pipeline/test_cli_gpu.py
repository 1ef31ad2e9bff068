"""A GPU target's Job reports the GPUs it saw in its termination message (what the operator keeps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import optismith.measure.gpu as gpu
from optismith import cli
from optismith.results import TerminationMessage


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "m"},
        "spec": {"model": {"uri": str(tmp_path / "model")}, "output": {"uri": str(tmp_path / "out")},
                 "targets": [{"name": "cpu"}, {"name": "h200", "kind": "gpu"}]},
    }))
    return path


@pytest.mark.parametrize(("target", "gpus"), [("h200", ["NVIDIA H200 (GPU-6f1d)"]), ("cpu", [])])
def test_the_termination_message_names_the_gpus_of_gpu_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               target: str, gpus: list[str]) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv(cli.TERMINATION_LOG_ENV, str(log))
    monkeypatch.setattr(gpu, "gpu_names", lambda description=None: ["NVIDIA H200 (GPU-6f1d)"])
    with pytest.raises(SystemExit):  # benchmark before inspect: the stage fails, and says so
        cli.main(["stage", "benchmark", "-f", str(_manifest(tmp_path)), "--run-uri", str(tmp_path / "run"),
                  "--target", target])
    message = TerminationMessage.model_validate(json.loads(log.read_text()))
    assert message.status == "failed" and message.target == target
    assert message.gpus == gpus
