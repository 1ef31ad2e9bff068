"""The benchmark stage on fake runtimes whose relative speed is known by construction."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from optismith.errors import StageError
from optismith.measure.host import default_threads
from optismith.measure.statistics import latency_stats
from optismith.results import ConfigResult, VariantBenchmark
from optismith.runs.layout import raw_latencies as raw_latency_key
from optismith.stages.benchmark import BenchmarkStage
from optismith.stages.benchmark.final import finalists
from optismith.stages.benchmark.sweep import default_server_qps
from tests.stages.fake_runtimes import FakeRuntime, fake_variant, install_fakes, make_run, manifest


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)


def _by_name(benchmarks: list[VariantBenchmark]) -> dict[str, VariantBenchmark]:
    return {b.variant: b for b in benchmarks}


def test_a_variant_doing_a_third_of_the_work_is_about_three_times_faster(tmp_path: Path) -> None:
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel", units=3), fake_variant("tflite-fp32", units=1)],
        model=manifest(tmp_path, benchmark={"timeBudget": "2s"}),
    )
    record = BenchmarkStage().run(ctx)
    results = _by_name(record.benchmarks)
    fast = results["tflite-fp32"]
    assert fast.status == "built", fast.reason
    assert sorted((c.batch_size, c.threads) for c in fast.configs) == [(1, 1), (4, 1)]
    for config in fast.configs:
        assert 2.0 <= config.speedup <= 4.5, config
        assert config.speedup == pytest.approx(config.baseline_latency.p50_ms / config.latency.p50_ms)
        assert config.throughput_per_s == pytest.approx(config.batch_size / (config.latency.mean_ms / 1e3))
        assert config.latency.ci95_low_ms <= config.latency.p50_ms <= config.latency.ci95_high_ms
        assert config.rounds >= 10 and config.latency.samples == config.rounds
        assert config.server_p99_ms is None  # the server scenario was not requested
    assert fast.cold_start_ms is not None and fast.cold_start_ms > 0
    assert set(fast.best_by_batch) == {"1", "4"}

    baseline = results["tf-savedmodel"]
    assert baseline.status == "built"
    assert all(c.speedup == 1.0 for c in baseline.configs)
    # The baseline's own numbers pool its latencies from the paired rounds.
    assert baseline.best_by_batch["1"].latency.samples == fast.best_by_batch["1"].rounds
    assert baseline.best_by_batch["1"].latency.p50_ms == pytest.approx(fast.best_by_batch["1"].baseline_latency.p50_ms)

    raw = np.load(io.BytesIO(ctx.store.read_bytes(raw_latency_key("cpu", "tflite-fp32", 1))))
    assert raw.size == fast.best_by_batch["1"].rounds
    assert np.median(raw) == pytest.approx(fast.best_by_batch["1"].latency.p50_ms)
    assert record.payload["raw_latencies"]["tflite-fp32"] == raw_latency_key("cpu", "tflite-fp32", 1)
    assert FakeRuntime.open_sessions == 0  # every session was closed


def test_environment_is_recorded(tmp_path: Path) -> None:
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel", units=1)],
        model=manifest(tmp_path, benchmark={"batchSizes": [1], "minRounds": 6}),
    )
    env = BenchmarkStage().run(ctx).payload["environment"]
    assert env["cpu"]["model"]
    assert isinstance(env["cpu"]["flags"], list)
    assert env["logical_cores"] >= 1 and 1 <= env["affinity_cores"] <= env["logical_cores"]
    assert env["total_memory_bytes"] > 2**20
    assert env["versions"]["numpy"] == np.__version__
    assert env["versions"]["fake-runtime"] == "1.0"
    assert env["python"].count(".") == 2


def test_the_thread_sweep_picks_the_fastest_thread_count(tmp_path: Path) -> None:
    model = manifest(tmp_path, benchmark={"threads": [1, 2], "batchSizes": [1], "finalists": 0})
    ctx = make_run(
        tmp_path,
        [
            fake_variant("tf-savedmodel", units=2),
            fake_variant("tflite-fp32", units={1: 4, 2: 1}),  # scales with threads
            fake_variant("onnx-fp32", units={1: 1, 2: 4}),  # gets slower with more threads
        ],
        model=model,
    )
    results = _by_name(BenchmarkStage().run(ctx).benchmarks)
    assert results["tflite-fp32"].best_by_batch["1"].threads == 2
    assert results["onnx-fp32"].best_by_batch["1"].threads == 1
    assert len(results["tflite-fp32"].configs) == 2
    # One session per (variant, thread count), released before the next one is loaded.
    assert FakeRuntime.loads.count(("tflite-fp32", 1)) == 1 and FakeRuntime.loads.count(("tflite-fp32", 2)) == 1
    assert FakeRuntime.open_sessions == 0


def test_a_tiny_budget_flags_noisy_results_unstable(tmp_path: Path) -> None:
    model = manifest(tmp_path, benchmark={"timeBudget": "1ms", "stability": "1%", "batchSizes": [1]})
    ctx = make_run(
        tmp_path, [fake_variant("tf-savedmodel", units=1), fake_variant("tflite-fp32", units=1, jitter=8)], model=model
    )
    record = BenchmarkStage().run(ctx)
    config = _by_name(record.benchmarks)["tflite-fp32"].configs[0]
    assert not config.stable
    assert config.rounds == 10  # min_rounds, then the budget stopped it
    assert "unstable" in record.message and "tflite-fp32" in record.message


def test_unrunnable_and_failing_variants_do_not_fail_the_stage(tmp_path: Path) -> None:
    ctx = make_run(
        tmp_path,
        [
            fake_variant("tf-savedmodel", units=1),
            fake_variant("openvino-fp32", runtime="fake-missing"),
            fake_variant("tftrt-fp16", units=1),  # needs a GPU, and the target is a CPU
            fake_variant("onnx-int8", status="failed"),  # never built: nothing to measure
            fake_variant("tflite-fp16", units=1, fail_batches=(4,)),
            fake_variant("tflite-int8", units=1, fail_batches=(1, 4)),
        ],
    )
    results = _by_name(BenchmarkStage().run(ctx).benchmarks)
    assert results["openvino-fp32"].status == "skipped"
    assert "fake-missing not installed" in results["openvino-fp32"].reason
    assert results["tftrt-fp16"].status == "skipped" and "GPU" in results["tftrt-fp16"].reason
    assert "onnx-int8" not in results
    partial = results["tflite-fp16"]
    assert partial.status == "built" and [c.batch_size for c in partial.configs] == [1]
    assert "batch 4" in partial.reason and "not supported" in partial.reason
    assert results["tflite-int8"].status == "failed" and results["tflite-int8"].configs == []
    assert FakeRuntime.open_sessions == 0


def test_a_fixed_batch_artifact_is_measured_only_at_its_own_batch_size(tmp_path: Path) -> None:
    # TFLite of a recurrent model runs only at batch 1 (builders/tflite_fixed_batch.py): the other batch
    # sizes are recorded as not measured, and the sweep starts with a batch it cannot take without failing.
    model = manifest(tmp_path, benchmark={"batchSizes": [4, 1], "finalists": 0})
    variants = [fake_variant("tf-savedmodel", units=2), fake_variant("tflite-fp32", units=1, fixed_batch=1)]
    ctx = make_run(tmp_path, variants, model=model)
    fixed = _by_name(BenchmarkStage().run(ctx).benchmarks)["tflite-fp32"]
    assert fixed.status == "built" and [c.batch_size for c in fixed.configs] == [1]
    assert "batch 4: not measured (the artifact's batch size is fixed at 1)" in fixed.reason


def test_server_scenario_runs_on_the_best_config_of_the_selection_batch(tmp_path: Path) -> None:
    model = manifest(
        tmp_path,
        benchmark={
            "threads": [1, 2],
            "batchSizes": [1, 4],
            "scenarios": ["singleStream", "offline", "server"],
            "serverDuration": "300ms",
        },
    )
    ctx = make_run(
        tmp_path, [fake_variant("tf-savedmodel", units=2), fake_variant("tflite-fp32", units={1: 3, 2: 1})], model=model
    )
    results = _by_name(BenchmarkStage().run(ctx).benchmarks)
    for name in ("tflite-fp32", "tf-savedmodel"):
        best = results[name].best_by_batch["1"]
        assert best.server_p99_ms is not None and best.server_qps is not None
        # Never more than offered (Poisson noise aside); less only if the worker fell behind.
        assert 0 < best.server_qps <= 1.3 * default_server_qps(best)
        assert best.server_p99_ms >= best.latency.p50_ms * 0.8
        others = [c for c in results[name].configs if (c.threads, c.batch_size) != (best.threads, 1)]
        assert len(others) == 3 and all(c.server_p99_ms is None for c in others)
        assert results[name].best_by_batch["4"].server_p99_ms is None
        assert best in results[name].configs
    assert FakeRuntime.open_sessions == 0


def test_server_scenario_at_a_given_rate(tmp_path: Path) -> None:
    model = manifest(
        tmp_path,
        benchmark={
            "batchSizes": [1],
            "minRounds": 6,
            "serverQps": 200,
            "scenarios": ["server"],
            "serverDuration": "500ms",
        },
    )
    ctx = make_run(tmp_path, [fake_variant("tf-savedmodel", units=1)], model=model)
    best = BenchmarkStage().run(ctx).benchmarks[0].best_by_batch["1"]
    # ~100 Poisson arrivals at 200/s: far below capacity, so all are served at the offered rate.
    assert best.server_qps is not None and 120 <= best.server_qps <= 280
    assert best.server_p99_ms is not None and best.server_p99_ms < 250


def test_default_server_rate_is_half_the_measured_capacity() -> None:
    config = ConfigResult(
        batch_size=8,
        threads=1,
        latency=latency_stats([0.002, 0.002, 0.002, 0.002]),
        baseline_latency=latency_stats([0.004] * 4),
        speedup=2.0,
        throughput_per_s=4000.0,
        stable=True,
        rounds=4,
    )
    assert default_server_qps(config) == pytest.approx(250.0)  # 500 requests/s at 2 ms each


def test_peak_rss_counts_what_the_variant_holds(tmp_path: Path) -> None:
    model = manifest(tmp_path, benchmark={"batchSizes": [1], "minRounds": 6})
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel", units=1), fake_variant("tflite-fp32", units=1, ballast_mb=64)],
        model=model,
    )
    results = _by_name(BenchmarkStage().run(ctx).benchmarks)
    assert results["tflite-fp32"].peak_rss_bytes is not None
    assert results["tflite-fp32"].peak_rss_bytes >= 48 * 2**20


def test_without_a_baseline_the_stage_fails_with_a_fix(tmp_path: Path) -> None:
    ctx = make_run(tmp_path, [fake_variant("tflite-fp32", units=1)])
    with pytest.raises(StageError, match="baseline tf-savedmodel") as error:
        BenchmarkStage().run(ctx)
    assert error.value.fix


def test_default_thread_counts() -> None:
    assert default_threads(1) == [1]
    assert default_threads(2) == [1, 2]
    assert default_threads(6) == [1, 2, 4, 6]
    assert default_threads(8) == [1, 2, 4, 8]
    assert default_threads()[0] == 1


def _measured(name: str, speedup: float, batch: int = 1) -> VariantBenchmark:
    stats = latency_stats([0.001] * 4)
    config = ConfigResult(batch_size=batch, threads=1, latency=stats, baseline_latency=stats, speedup=speedup,
                          throughput_per_s=1000.0, stable=True, rounds=4)
    return VariantBenchmark(variant=name, target="cpu", status="built", configs=[config],
                            best_by_batch={str(batch): config})


def test_finalists_are_the_fastest_few_within_the_margin_of_the_best() -> None:
    results = [_measured("a", 2.0), _measured("b", 9.0), _measured("c", 7.0), _measured("d", 5.9),
               _measured("e", 8.0), _measured("other-batch", 20.0, batch=8),
               VariantBenchmark(variant="failed", target="cpu", status="failed")]
    assert [r.variant for r in finalists(results, 1, limit=4)] == ["b", "e", "c", "d"]
    assert [r.variant for r in finalists(results, 1, limit=5)] == ["b", "e", "c", "d"]  # a: 9.0 / 2.0 > 2
    assert [r.variant for r in finalists(results, 1, limit=2)] == ["b", "e"]
    assert finalists(results, 1, limit=1) == []  # a final needs two
    assert finalists([_measured("b", 9.0), _measured("a", 4.4)], 1, limit=4) == []  # nobody close to b
    assert finalists(results, 4, limit=4) == []


def test_close_variants_meet_in_a_final_with_the_baseline(tmp_path: Path) -> None:
    model = manifest(tmp_path, benchmark={"threads": [1, 2], "batchSizes": [1, 4], "timeBudget": "1s"})
    ctx = make_run(
        tmp_path,
        [
            fake_variant("tf-savedmodel", units=3),
            fake_variant("tflite-fp32", units={1: 2, 2: 1}),
            fake_variant("onnx-fp32", units=1),
            fake_variant("openvino-fp32", units=3),  # 3x slower than the others: not a finalist
        ],
        model=model,
    )
    record = BenchmarkStage().run(ctx)
    results = _by_name(record.benchmarks)
    assert set(record.payload["final"]) == {"1", "4"}
    final = record.payload["final"]["1"]
    assert set(final["finalists"]) == {"tflite-fp32", "onnx-fp32"}
    assert final["finalists"]["tflite-fp32"]["threads"] == 2
    for name in ("tflite-fp32", "onnx-fp32"):
        config = results[name].best_by_batch["1"]
        assert config.rounds == final["rounds"] >= 10
        assert config.latency.samples > config.rounds  # fast calls are timed in bursts
        assert config.speedup == pytest.approx(config.baseline_latency.p50_ms / config.latency.p50_ms)
        assert final["finalists"][name]["speedup"] == config.speedup
        assert 1.8 <= config.speedup <= 4.5, config
        assert config in results[name].configs  # the sweep's row for that config is the final's
        raw = np.load(io.BytesIO(ctx.store.read_bytes(raw_latency_key("cpu", name, 1))))
        assert raw.size == config.latency.samples
        assert results[name].best_by_batch["4"].rounds == record.payload["final"]["4"]["rounds"]
    unchanged = results["openvino-fp32"].best_by_batch["1"]
    assert unchanged.latency.samples == unchanged.rounds
    assert FakeRuntime.loads.count(("tflite-fp32", 2)) == 3  # the sweep's session, then one per final
    assert FakeRuntime.open_sessions == 0


def test_no_final_when_turned_off(tmp_path: Path) -> None:
    model = manifest(tmp_path, benchmark={"batchSizes": [1], "minRounds": 6, "finalists": 0})
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel", units=2), fake_variant("tflite-fp32", units=1),
         fake_variant("onnx-fp32", units=1)],
        model=model,
    )
    record = BenchmarkStage().run(ctx)
    assert record.payload["final"] == {} and record.payload["plan"]["finalists"] == 0
