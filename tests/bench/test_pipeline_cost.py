"""The pipeline-cost bench: a stage in its own process, timed and measured by the kernel, and the table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import bench.pipeline_cost as pipeline_cost
from bench.sources import make_source_in_subprocess, manifest


def _document(stages: list[dict[str, object]]) -> dict[str, object]:
    return {
        "started_at": "now",
        "machine": {"cpu_model": "cpu", "cores": 2},
        "load": {"loadavg_1m_mean": 1.0, "loadavg_1m_max": 1.5, "other_processes_cores_mean": 0.2},
        "import_tensorflow": {"process_seconds": 3.0, "cpu_seconds": 2.9, "process_peak_rss_bytes": 500 * 2**20},
        "models": [
            {
                "model": "digits",
                "stages": stages,
                "total_stage_seconds": 5.5,
                "total_process_seconds": 8.0,
                "peak_rss_bytes": 700 * 2**20,
            }
        ],
    }


def test_the_table_has_a_row_per_stage_and_a_total() -> None:
    stages = [
        {
            "stage": "inspect",
            "seconds": 4.0,
            "process_seconds": 5.5,
            "cpu_seconds": 5.0,
            "process_peak_rss_bytes": 700 * 2**20,
            "status": "succeeded",
        },
        {
            "stage": "select",
            "seconds": 1.5,
            "process_seconds": 2.5,
            "cpu_seconds": 0.4,
            "process_peak_rss_bytes": 50 * 2**20,
            "status": "succeeded",
        },
    ]
    text = pipeline_cost.render(_document(stages))
    assert "| inspect | 4.0 | 5.5 | 5.0 | 700 | succeeded |" in text
    assert "| **total** | 5.5 | 8.0 | 5.4 | 700 |  |" in text
    assert "`import tensorflow` alone, in a fresh process: 3.0 s" in text


@pytest.mark.slow
@pytest.mark.tf
def test_a_stage_runs_in_its_own_process_and_reports_time_and_memory(digits_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "digits").symlink_to(digits_dir)
    source = make_source_in_subprocess("digits", tmp_path)  # found there, not trained again
    assert source.saved_model == tmp_path / "digits" / "model" and source.labelled
    manifest_path = tmp_path / "m.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest(source, tmp_path / "runs")))
    run_dir = tmp_path / "runs" / "digits"
    result = pipeline_cost.run_stage_process(manifest_path, run_dir, "inspect", None, tmp_path / "inspect.log")
    assert result["exit_code"] == 0, (tmp_path / "inspect.log").read_text()[-2000:]
    assert (run_dir / "stages" / "inspect.json").exists()
    assert result["process_seconds"] > 0 and result["cpu_seconds"] > 0
    assert result["process_peak_rss_bytes"] > 100 * 2**20  # TensorFlow was imported in that process
    failed = pipeline_cost.run_stage_process(manifest_path, run_dir, "benchmark", None, tmp_path / "bad.log")
    assert failed["exit_code"] != 0  # a per-target stage without --target: the CLI's error, not a hang
