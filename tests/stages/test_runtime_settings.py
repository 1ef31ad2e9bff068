"""Per-runtime settings: each session says what it runs with; the benchmark records it per measured config
and promotion.json carries the winner's, so a server can load it the way it was measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.results import ConfigResult, LatencyStats, PromotionManifest, StageRecord, VariantBenchmark
from optismith.runs.layout import PROMOTION
from optismith.stages.benchmark import BenchmarkStage
from optismith.stages.promote import PromoteStage
from tests.stages.fake_runtimes import fake_variant, install_fakes, make_run, manifest
from tests.stages.promotion_runs import sealed_run


def test_every_measured_config_records_its_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_fakes(monkeypatch)
    model = manifest(tmp_path, benchmark={"threads": [1, 2], "batchSizes": [1], "finalists": 0, "minRounds": 6})
    ctx = make_run(tmp_path, [fake_variant("tf-savedmodel", units=2), fake_variant("tflite-fp32", units=1)],
                   model=model)
    record = BenchmarkStage().run(ctx)
    for bench in record.benchmarks:
        assert {c.threads: c.runtime_settings for c in bench.configs} == {1: {"threads": 1}, 2: {"threads": 2}}


def test_onnx_and_tflite_sessions_report_their_effective_settings(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from optismith.runtimes.onnx import OnnxRuntime
    from tests.runtimes.tiny_onnx import write_tiny_onnx

    session = OnnxRuntime.load(write_tiny_onnx(tmp_path / "tiny.onnx"), threads=2)
    assert session.settings() == {"intra_op_num_threads": 2, "inter_op_num_threads": 1,
                                  "execution_mode": "ORT_SEQUENTIAL", "graph_optimization_level": "ORT_ENABLE_ALL"}
    session.close()


def test_promotion_json_carries_the_winners_runtime_settings(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    stats = LatencyStats(p50_ms=1.0, p90_ms=1.1, p99_ms=1.2, mean_ms=1.0, ci95_low_ms=0.9, ci95_high_ms=1.1,
                         samples=20)
    settings = {"threads": 2, "num_threads": 2}
    config = ConfigResult(batch_size=1, threads=2, latency=stats, baseline_latency=stats, speedup=2.5,
                          throughput_per_s=1000.0, stable=True, rounds=20, runtime_settings=settings)
    bench = VariantBenchmark(variant="tflite-fp32", target="cpu", status="built", configs=[config],
                             best_by_batch={"1": config})
    ctx = sealed_run(tmp_path, str(destination), benchmark=StageRecord(
        stage="benchmark", status="succeeded", started_at="", finished_at="", duration_seconds=1.0, target="cpu",
        benchmarks=[bench]))
    assert PromoteStage().run(ctx).payload["promoted"] is True
    promoted = PromotionManifest.model_validate_json((destination / PROMOTION).read_bytes())
    assert promoted.runtime_settings == settings
