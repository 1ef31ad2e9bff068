"""What confined each model-running stage reaches results.json and report.md, grouped, and a stage without
an isolation (it ran no model code) is left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.results import Isolation, RunResults, StageRecord
from optismith.stages.report import ReportStage
from tests.stages.fake_runtimes import install_fakes
from tests.stages.test_report import run_measuring_stages

BWRAP = Isolation(mechanism="bwrap", network="none", filesystem="scratch-only", processes="own-namespace",
                  credentials="absent", environment=["HOME", "PATH"])
NONE = Isolation(mechanism="none", network="shared", filesystem="unrestricted", processes="shared",
                 credentials="absent", note="bwrap is not installed; unshare: Operation not permitted")


def test_isolation_per_stage_in_results_and_one_line_in_the_report(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)
    ctx = run_measuring_stages(tmp_path)
    for second, (stage, isolation) in enumerate((("inspect", BWRAP), ("freeze", BWRAP), ("convert", NONE))):
        record = StageRecord(stage=stage, status="succeeded", started_at=f"2026-01-01T00:00:0{second}Z",
                             finished_at="2026-01-01T00:00:01Z", duration_seconds=1.0, isolation=isolation)
        ctx.store.write_bytes(f"stages/{stage}.json", record.model_dump_json().encode())
    ReportStage().run(ctx)
    results = RunResults.model_validate_json(ctx.store.read_bytes("results.json"))
    assert results.isolation == {"inspect": BWRAP, "freeze": BWRAP, "convert": NONE}
    [line] = [line for line in ctx.store.read_bytes("report.md").decode().splitlines() if "Isolation" in line]
    assert "inspect, freeze: bwrap: no network, sees only its scratch dir, credentials absent" in line
    assert "convert: none: network shared, host files unrestricted" in line and "unshare" in line
