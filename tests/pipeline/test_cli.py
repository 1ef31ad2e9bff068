"""The CLI as a user meets it: the whole plan locally, the final table, bad input with clear errors and
distinct exit codes, and nothing that looks complete after a failure."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "optismith.cli"]


# What TensorFlow (C++ and Python), absl, the TFLite converter, MLIR, ONNX Runtime and OpenVINO print.
LIBRARY_LOG = re.compile(
    r"^[WIEF]0000 |WARNING: All log messages before absl|tensorflow/|WARNING:tensorflow|oneDNN|^loc\(|"
    r"onnxruntime|fully_quantize|XNNPACK|Instructions for updating|\[ (?:WARNING|INFO|ERROR) \]|"
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [WIEF] ",
    re.MULTILINE,
)


def camel_keys_only(value: Any, where: str = "") -> list[str]:
    """Paths of keys that are not camelCase."""
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in
                ([f"{where}.{k}"] if "_" in str(k) else []) + camel_keys_only(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in camel_keys_only(v, f"{where}[{i}]")]
    return []


def optismith(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # No TF_CPP_MIN_LOG_LEVEL here: the terminal must be quiet by itself, as in `make demo`.
    merged = {**os.environ, "COLUMNS": "200", **(env or {})}
    merged.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=merged, timeout=timeout, check=False)


def write_manifest(path: Path, spec: dict[str, Any], name: str = "digits") -> Path:
    document = {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def fast_spec(digits_dir: Path, output: Path, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": str(digits_dir / "model")},
        "calibration": {"uri": str(digits_dir / "data" / "calibration.npz"), "samples": 50},
        "evaluation": {"uri": str(digits_dir / "data" / "eval.npz")},
        "benchmark": {
            "batchSizes": [1],
            "threads": [1],
            "timeBudget": "300ms",
            "minRounds": 5,
            "warmupRuns": 2,
            "scenarios": ["singleStream"],
        },
        "output": {"uri": str(output)},
    }
    spec.update(overrides)
    return spec


def test_validate_names_the_bad_field(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.yaml",
        {
            "model": {"uri": "m"},
            "output": {"uri": "o"},
            "benchmark": {"batchSizes": [1], "thredas": [2]},
            "calibration": {"synthetic": True},
        },
    )
    result = optismith("validate", "-f", str(path))
    assert result.returncode == 2, result.stderr
    assert "spec.benchmark.thredas: unknown field" in result.stderr
    assert "Fix:" in result.stderr


def test_validate_accepts_a_manifest_with_only_a_model_and_an_output(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.yaml", {"model": {"uri": "m"}, "output": {"uri": "o"}})
    result = optismith("validate", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "digits: valid" in result.stdout


@pytest.mark.tf
@pytest.mark.slow
def test_run_end_to_end_writes_a_complete_verified_run(digits_dir: Path, tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path / "m.yaml",
        fast_spec(
            digits_dir,
            tmp_path / "runs",
            variants=["tf-frozen", "tflite-fp32", "tflite-int8", "onnx-fp32"],
            promotion={"uri": str(tmp_path / "promoted")},
        ),
    )
    result = optismith("run", "-f", str(path), "--run-id", "r1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)  # exactly one JSON object: json.loads refuses anything more
    run_dir = tmp_path / "runs" / "digits" / "r1"
    assert summary["status"] == "succeeded" and summary["runUri"] == str(run_dir)
    assert summary["selection"]["winner"] and summary["selection"]["winnerTarget"] == "cpu"
    assert camel_keys_only(summary) == []
    assert {i["mechanism"] for i in summary["isolation"].values()} <= {"bwrap", "unshare", "none"}
    assert set(summary["isolation"]) == {"inspect", "freeze", "optimize", "quantize", "convert", "benchmark@cpu",
                                         "evaluate@cpu"}
    for name in ("results.json", "report.md", "manifest.json"):
        assert (run_dir / name).is_file(), name
    verify = optismith("verify", str(run_dir))
    assert verify.returncode == 0, verify.stderr
    (run_dir / "report.md").write_text("tampered")
    assert optismith("verify", str(run_dir)).returncode != 0
    promotion = json.loads((tmp_path / "promoted" / "promotion.json").read_text())
    assert promotion["variant"] == summary["selection"]["winner"]


@pytest.mark.tf
@pytest.mark.slow
def test_run_with_only_a_model_and_an_output_uses_the_defaults_and_completes(digits_dir: Path, tmp_path: Path) -> None:
    """What `validate` accepts, `run` completes: no calibration data, so the int8 variants are skipped with the
    fix in their reason, and every default that is left runs."""
    path = write_manifest(tmp_path / "m.yaml", {"model": {"uri": str(digits_dir / "model")},
                                                "output": {"uri": str(tmp_path / "runs")}})
    result = optismith("run", "-f", str(path), "--run-id", "r1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded" and summary["selection"]["winner"]
    results = json.loads((tmp_path / "runs" / "digits" / "r1" / "results.json").read_text())
    skipped = {v["name"]: v["reason"] for v in results["variants"] if v["status"] == "skipped"}
    assert "calibration" in skipped["tflite-int8"], skipped
    assert optismith("verify", str(tmp_path / "runs" / "digits" / "r1")).returncode == 0


@pytest.mark.tf
@pytest.mark.parametrize(
    ("case", "exit_code", "needle"),
    [
        ("unknown-format", 3, "format"),
        ("corrupt-protobuf", 3, "GraphDef"),
        ("wrong-signature", 4, "serving_default"),
        ("missing-model", 5, "no such"),
        ("bad-calibration-shape", 7, "shape"),
        ("unwritable-output", 5, "write"),
    ],
)
def test_bad_input_gets_a_clear_error_and_distinct_exit_code(
    case: str, exit_code: int, needle: str, digits_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    spec = fast_spec(digits_dir, tmp_path / "runs", variants=["tflite-int8"])
    if case == "unknown-format":
        (tmp_path / "model.txt").write_text("hello")
        spec["model"] = {"uri": str(tmp_path / "model.txt")}
    elif case == "corrupt-protobuf":
        (tmp_path / "model.pb").write_bytes(b"\x08\x96\x01garbage-not-a-graph" * 10)
        spec["model"] = {
            "uri": str(tmp_path / "model.pb"),
            "format": "frozen-graph",
            "inputs": [{"name": "x", "shape": [-1, 8, 8, 1]}],
            "outputs": ["y"],
        }
    elif case == "wrong-signature":
        spec["model"] = {"uri": str(digits_dir / "model"), "signature": "predict_v2"}
    elif case == "missing-model":
        spec["model"] = {"uri": str(tmp_path / "nowhere")}
    elif case == "bad-calibration-shape":
        np.savez(tmp_path / "calibration.npz", x=np.zeros((10, 28, 28, 1), dtype=np.float32))
        spec["calibration"] = {"uri": str(tmp_path / "calibration.npz")}
    elif case == "unwritable-output":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        spec["output"] = {"uri": str(locked / "runs")}
        if os.geteuid() == 0:
            spec["output"] = {"uri": "/proc/optismith-cannot-write-here"}
    path = write_manifest(tmp_path / "m.yaml", spec)
    result = optismith("run", "-f", str(path), "--run-id", "r1", "--quiet")
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert needle.lower() in result.stderr.lower(), result.stderr
    assert "Fix:" in result.stderr or "fix" in result.stderr.lower()
    assert not list((tmp_path / "runs").rglob("manifest.json")), "a failed run must not look complete"


@pytest.mark.tf
@pytest.mark.s3
@pytest.mark.slow
def test_run_with_an_s3_output_on_seaweedfs(digits_dir: Path, tmp_path: Path, s3_bucket: str) -> None:
    spec = fast_spec(digits_dir, tmp_path / "unused", variants=["tflite-fp32"])
    spec["output"] = {"uri": f"s3://{s3_bucket}/runs"}
    path = write_manifest(tmp_path / "m.yaml", spec)
    result = optismith("run", "-f", str(path), "--run-id", "s3run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    run_uri = f"s3://{s3_bucket}/runs/digits/s3run"
    assert json.loads(result.stdout)["runUri"] == run_uri
    verify = optismith("verify", run_uri)
    assert verify.returncode == 0, verify.stderr
    assert "complete" in verify.stdout


@pytest.mark.parametrize("case", ["missing-model", "invalid-manifest"])
def test_a_failing_run_json_prints_one_json_error_object(case: str, tmp_path: Path) -> None:
    spec: dict[str, Any] = {"model": {"uri": str(tmp_path / "nowhere")}, "output": {"uri": str(tmp_path / "runs")}}
    if case == "invalid-manifest":
        spec["benchmark"] = {"thredas": [2]}
    result = optismith("run", "-f", str(write_manifest(tmp_path / "m.yaml", spec)), "--json")
    expected = {"missing-model": ("StorageError", 5), "invalid-manifest": ("InvalidSpec", 2)}[case]
    assert result.returncode == expected[1], result.stdout + result.stderr
    error = json.loads(result.stdout)
    assert (error["status"], error["reason"], error["exitCode"]) == ("failed", *expected)
    assert error["message"] and camel_keys_only(error) == []
    assert error["message"].split(".")[0] in result.stderr  # the human-readable error is on stderr as well
    if case == "missing-model":
        assert error["runUri"].startswith(str(tmp_path / "runs" / "digits" / "run-"))


@pytest.mark.tf
@pytest.mark.slow
def test_the_terminal_shows_progress_and_results_and_the_library_logs_go_to_files(
    digits_dir: Path, tmp_path: Path
) -> None:
    # The converters that print the most: TFLite int8 (its calibrator), ONNX (tf2onnx), OpenVINO.
    spec = fast_spec(digits_dir, tmp_path / "runs", variants=["tflite-int8", "onnx-fp32", "openvino-fp32"])
    path = write_manifest(tmp_path / "m.yaml", spec)
    quiet = optismith("run", "-f", str(path), "--run-id", "quiet")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    terminal = quiet.stdout + quiet.stderr
    assert not LIBRARY_LOG.findall(terminal), f"library log lines on the terminal:\n{terminal}"
    assert "Winner:" in terminal and "inspect: succeeded" in terminal and "report:" in terminal
    logs = tmp_path / "runs" / "digits" / "quiet" / "logs"
    names = {p.name for p in logs.glob("*.log")}
    assert {"inspect.log", "quantize.log", "convert.log", "benchmark@cpu.log", "evaluate@cpu.log", "select.log",
            "report.log"} <= names
    logged = "\n".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    assert len(LIBRARY_LOG.findall(logged)) >= 3, logged[-3000:]
    manifest = json.loads((logs.parent / "manifest.json").read_text())
    assert {"logs/inspect.log", "logs/convert.log", "logs/select.log"} <= {f["path"] for f in manifest["files"]}

    verbose = optismith("run", "-f", str(write_manifest(tmp_path / "v.yaml", fast_spec(
        digits_dir, tmp_path / "runs", variants=["tflite-fp32"]))), "--run-id", "verbose", "--verbose")
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert re.search(r"inspect\.log: .*", verbose.stdout) and LIBRARY_LOG.search(verbose.stdout), verbose.stdout
