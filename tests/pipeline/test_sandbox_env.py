"""What the model-running child keeps of the environment, and choosing the mechanism."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.errors import SpecError
from optismith.pipeline import sandbox
from optismith.pipeline.sandbox import child_environment, choose_mechanism, confine


def test_the_child_keeps_locale_python_and_tuning_and_nothing_that_looks_like_a_secret(tmp_path: Path) -> None:
    parent = {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "PYTHONPATH": "/src", "TF_NUM_INTRAOP_THREADS": "2",
        "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "0",
        "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks/token", "KUBECONFIG": "/root/.kube/config",
        "GITHUB_TOKEN": "g", "HTTPS_PROXY": "http://u:p@proxy", "TF_VAR_db_password": "p", "ORT_API_KEY": "k",
        "OPTISMITH_MANIFEST": "{}", "HOME": "/root",
    }
    env = child_environment(tmp_path, parent)
    kept = {k for k in parent if k in env and env[k] == parent[k]}
    assert kept == {"PATH", "LANG", "PYTHONPATH", "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"}
    assert env["HOME"] == str(tmp_path / "home") and env["TMPDIR"] == str(tmp_path / "tmp")
    assert all(v.startswith(str(tmp_path)) for k, v in env.items() if k in ("KERAS_HOME", "MPLCONFIGDIR"))


def test_a_forced_mechanism_that_does_not_work_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "unavailable", lambda mechanism: None if mechanism == "none" else "not here")
    with pytest.raises(SpecError, match="does not work here"):
        choose_mechanism("bwrap")
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "firejail")
    with pytest.raises(SpecError, match="not a sandbox mechanism"):
        choose_mechanism()
    monkeypatch.delenv(sandbox.SANDBOX_ENV)
    assert choose_mechanism() == ("none", ["not here", "not here"])


def test_falling_back_to_none_is_recorded_with_the_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reasons = {"bwrap": "bwrap is not installed", "unshare": "unshare: Operation not permitted"}
    monkeypatch.setattr(sandbox, "unavailable", reasons.get)
    confined = confine(["python", "-c", "pass"], tmp_path)
    assert confined.argv == ["python", "-c", "pass"]
    isolation = confined.isolation
    assert (isolation.mechanism, isolation.network, isolation.filesystem) == ("none", "shared", "unrestricted")
    assert "bwrap is not installed" in isolation.note and "Operation not permitted" in isolation.note
