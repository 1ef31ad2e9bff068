"""The report stage end to end on a fake run: results.json, report.md, plots and the sealing manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import optismith.stages.report as report_module
from optismith.errors import IncompleteRunError
from optismith.results import RunManifest, RunResults, StageRecord
from optismith.runs.manifest import verify_manifest
from optismith.runs.stage import StageContext
from optismith.stages.benchmark import BenchmarkStage
from optismith.stages.evaluate import EvaluateStage
from optismith.stages.report import ReportStage
from optismith.stages.report.assemble import spec_digest
from optismith.stages.select import SelectStage
from optismith.storage.local import LocalStorage
from tests.stages.fake_runtimes import fake_variant, install_fakes, make_run, manifest, store_record, with_target

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_measuring_stages(tmp_path: Path) -> StageContext:
    """benchmark, evaluate and select on fakes, records stored as the pipeline runner would."""
    model = manifest(tmp_path, benchmark={"minRounds": 6, "timeBudget": "300ms"})
    ctx = make_run(
        tmp_path,
        [
            fake_variant("tf-savedmodel", units=3, size_bytes=400_000),
            fake_variant("tflite-fp32", units=1, size_bytes=100_000),
            fake_variant("tflite-int8", units=1, noise=3.0, size_bytes=30_000),
            fake_variant("openvino-fp32", runtime="fake-missing"),
            fake_variant("onnx-int8", status="failed"),
        ],
        model=model,
    )
    quantize = StageRecord(
        stage="quantize",
        status="succeeded",
        started_at="",
        finished_at="",
        duration_seconds=0.5,
        payload={"calibration": {"source": "synthetic", "samples": 200}},
    )
    store_record(ctx, quantize)
    store_record(ctx, BenchmarkStage().run(ctx))
    store_record(ctx, EvaluateStage().run(ctx))
    final = with_target(ctx, None)
    store_record(final, SelectStage().run(final))
    return final


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StageContext, StageRecord]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_fakes(monkeypatch)
        ctx = run_measuring_stages(tmp_path_factory.mktemp("report"))
        record = ReportStage().run(ctx)
        yield ctx, record


def _root(ctx: StageContext) -> Path:
    assert isinstance(ctx.store, LocalStorage)
    return ctx.store.local_path()


def test_results_json_is_a_valid_run_results(reported: tuple[StageContext, StageRecord]) -> None:
    ctx, _ = reported
    results = RunResults.model_validate_json(ctx.store.read_bytes("results.json"))
    assert results.name == "digits" and results.namespace == "ml" and results.generation == 3
    assert results.spec_digest == spec_digest(ctx.spec) and len(results.spec_digest) == 64
    assert results.selection is not None and results.selection.winner == "tflite-fp32"
    assert {b.variant for b in results.benchmarks} == {"tf-savedmodel", "tflite-fp32", "tflite-int8", "openvino-fp32"}
    assert {a.variant for a in results.accuracy} == {"tf-savedmodel", "tflite-fp32", "tflite-int8"}
    assert {v.name for v in results.variants} >= {"onnx-int8", "tflite-fp32"}
    assert results.environment["cpu"]["cpu"]["model"]
    assert results.calibration == {"source": "synthetic", "samples": 200}
    # In the order the stages started.
    assert [s.stage for s in results.stages] == ["inspect", "quantize", "benchmark", "evaluate", "select"]


def test_report_md_has_the_summary_and_tables(reported: tuple[StageContext, StageRecord]) -> None:
    ctx, record = reported
    text = ctx.store.read_bytes("report.md").decode()
    assert "**Winner: `tflite-fp32` on `cpu`.**" in text
    for heading in (
        "## Candidates",
        "## Latency",
        "### Target `cpu`",
        "## Accuracy",
        "## Variants",
        "## Environment",
        "## Plots",
    ):
        assert heading in text
    assert "| variant | target | objective | p50 ms |" in text
    assert "| variant | batch | threads | p50 ms | p90 ms | p99 ms | p50 95% CI |" in text
    assert "accuracy drop" in text and "exceeds maxAccuracyDrop 1%" in text  # tflite-int8's failure
    assert "fake-missing not installed" in text
    assert "conversion failed" in text  # the variant that never built
    for plot in record.payload["plots"]:
        assert f"]({plot})" in text


def test_plots_are_valid_pngs(reported: tuple[StageContext, StageRecord]) -> None:
    import matplotlib.image

    ctx, record = reported
    assert sorted(record.payload["plots"]) == ["plots/latency-cpu.png", "plots/throughput-latency-cpu.png",
                                               "plots/tradeoff.png"]
    for key in record.payload["plots"]:
        path = _root(ctx) / key
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 100 and image.shape[1] > 100


def test_candidates_csv_agrees_with_the_selection_and_is_sealed(reported: tuple[StageContext, StageRecord]) -> None:
    import csv
    import io

    ctx, record = reported
    assert record.payload["candidates"] == "candidates.csv"
    rows = list(csv.DictReader(io.StringIO(ctx.store.read_bytes("candidates.csv").decode())))
    results = RunResults.model_validate_json(ctx.store.read_bytes("results.json"))
    assert results.selection is not None
    assert [(r["variant"], r["target"]) for r in rows] == [(c.variant, c.target) for c in results.selection.candidates]
    for row, candidate in zip(rows, results.selection.candidates, strict=True):
        p50 = float(row["latency_p50_ms"]) if row["latency_p50_ms"] else None  # empty: not measured
        assert p50 == candidate.latency_p50_ms and row["passed"] == str(candidate.passed)
        assert row["objective"] == results.selection.objective
    assert [r["variant"] for r in rows if r["winner"] == "True"] == [results.selection.winner]
    sealed = {e.path for e in RunManifest.model_validate_json(ctx.store.read_bytes("manifest.json")).files}
    assert "candidates.csv" in sealed


def test_the_report_explains_each_column(reported: tuple[StageContext, StageRecord]) -> None:
    ctx, _ = reported
    text = ctx.store.read_bytes("report.md").decode()
    notes = text[text.index("## Reading the numbers"):text.index("## Latency")]
    for column in ("**objective**", "**speedup**", "**server qps**", "**server p99**", "**throughput/s**",
                   "**accuracy drop**"):
        assert column in notes


def test_the_manifest_lists_every_file_with_its_digest(reported: tuple[StageContext, StageRecord]) -> None:
    ctx, record = reported
    sealed = RunManifest.model_validate_json(ctx.store.read_bytes("manifest.json"))
    assert sealed.complete
    listed = {entry.path: entry for entry in sealed.files}
    assert set(listed) == set(ctx.store.list()) - {"manifest.json"}
    for key, entry in listed.items():
        data = (_root(ctx) / key).read_bytes()
        assert entry.sha256 == hashlib.sha256(data).hexdigest() and entry.size_bytes == len(data)
    assert sealed.results_sha256 == listed["results.json"].sha256
    assert {"report.md", "plots/tradeoff.png", "benchmarks/cpu/tflite-fp32-b1.npy"} <= set(listed)
    assert verify_manifest(ctx.store) == sealed
    assert record.payload["files"] == len(sealed.files)


@pytest.fixture
def run_copy(reported: tuple[StageContext, StageRecord], tmp_path: Path) -> LocalStorage:
    ctx, _ = reported
    shutil.copytree(_root(ctx), tmp_path / "copy")
    return LocalStorage(tmp_path / "copy")


def test_tampering_makes_verification_fail(run_copy: LocalStorage) -> None:
    results = json.loads(run_copy.read_bytes("results.json"))
    results["selection"]["winner"] = "tf-savedmodel"
    run_copy.write_bytes("results.json", json.dumps(results).encode())
    with pytest.raises(IncompleteRunError, match=r"results.json changed") as error:
        verify_manifest(run_copy)
    assert error.value.fix


def test_missing_and_extra_files_make_verification_fail(run_copy: LocalStorage) -> None:
    run_copy.delete("plots/tradeoff.png")
    run_copy.write_bytes("variants/sneaky/model.json", b"{}")
    with pytest.raises(IncompleteRunError) as error:
        verify_manifest(run_copy)
    assert "plots/tradeoff.png is missing" in error.value.what
    assert "variants/sneaky/model.json is not covered" in error.value.what


def test_records_written_after_the_report_are_allowed(run_copy: LocalStorage) -> None:
    run_copy.write_bytes("stages/report.json", b"{}")
    run_copy.write_bytes("stages/promote.json", b"{}")
    verify_manifest(run_copy)


def test_a_run_without_a_manifest_is_incomplete(run_copy: LocalStorage) -> None:
    run_copy.delete("manifest.json")
    with pytest.raises(IncompleteRunError, match=r"no manifest\.json"):
        verify_manifest(run_copy)
    run_copy.write_bytes("manifest.json", b"{not json")
    with pytest.raises(IncompleteRunError, match="not a valid run manifest"):
        verify_manifest(run_copy)


def test_a_failed_report_leaves_no_stale_manifest(
    reported: tuple[StageContext, StageRecord], run_copy: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, _ = reported
    copy = StageContext(manifest=ctx.manifest, store=run_copy, workdir=ctx.workdir)
    assert run_copy.exists("manifest.json")

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "write_plots", broken)
    with pytest.raises(RuntimeError):
        ReportStage().run(copy)
    assert not run_copy.exists("manifest.json")
    with pytest.raises(IncompleteRunError):
        verify_manifest(run_copy)
