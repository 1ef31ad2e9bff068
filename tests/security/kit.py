"""What the security suites share: planted secrets, the worker's command line, and the checks that a refused model
did nothing (no file outside the scratch directory, no secret in any byte of the run directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.cli import main

ROOT = Path(__file__).resolve().parents[2]
FILE_SECRET = "AWS_SECRET_ACCESS_KEY=plantedFAKEsecret0123456789/host+file"
ENV_SECRET = "envFAKEsecret0123456789/process+environment"
ENV_KEY_ID = "AKIAFAKEFAKEFAKEFAKE"


@dataclass(frozen=True)
class Plant:
    """A host the model should not reach: a file with a secret, and a path a model tries to write."""

    secret: Path
    target: Path

    @property
    def needles(self) -> list[bytes]:
        return [FILE_SECRET.encode(), ENV_SECRET.encode(), ENV_KEY_ID.encode()]


def plant(root: Path) -> Plant:
    host = root / "host"
    host.mkdir(parents=True, exist_ok=True)
    secret = host / "planted-secret.txt"
    secret.write_text(FILE_SECRET + "\n")
    return Plant(secret=secret, target=host / "written-by-the-model")


def write_manifest(path: Path, model: Path, run_dir: Path, overrides: dict[str, Any] | None = None) -> Path:
    spec: dict[str, Any] = {"model": {"uri": str(model)}, "variants": ["tf-savedmodel"],
                            "output": {"uri": str(run_dir.parent)}}
    for key, value in (overrides or {}).items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    document = {"apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
                "metadata": {"name": "hostile", "namespace": "ml"}, "spec": spec}
    path.write_text(yaml.safe_dump(document))
    return path


def stage_args(manifest: Path, run_dir: Path, stages: tuple[str, ...] = ("inspect",)) -> list[str]:
    return ["stage", *stages, "-f", str(manifest), "--run-uri", str(run_dir),
            "--workdir", str(run_dir.parent / "work")]


def run_in_process(manifest: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`optismith stage inspect` in this process (TensorFlow is imported once for the whole suite)."""
    with pytest.raises(SystemExit) as exited:
        main(stage_args(manifest, run_dir))
    return int(exited.value.code or 0), capsys.readouterr().err


def run_in_a_worker(manifest: Path, run_dir: Path, termination_log: Path) -> subprocess.CompletedProcess[str]:
    """`optismith stage inspect` as a Job runs it: a fresh process whose environment holds S3 credentials from
    the start (so /proc/self/environ has them, as in a pod)."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ENV_KEY_ID, "AWS_SECRET_ACCESS_KEY": ENV_SECRET,
           "OPTISMITH_TERMINATION_LOG": str(termination_log), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "optismith.cli", *stage_args(manifest, run_dir)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under `root` (or `root` itself) with any of `needles` in any of its bytes, as ASCII or as the
    UTF-16/32 numpy writes for text arrays."""
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    forms = [(needle, form) for needle in needles
             for form in (needle, needle.decode().encode("utf-16-le"), needle.decode().encode("utf-32-le"))]
    return sorted({f"{path}: {needle.decode()[:24]}" for path in files for needle, form in forms
                   if form in path.read_bytes()})
