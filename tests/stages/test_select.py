"""Selection over constructed benchmark and accuracy results: gates, objectives, Pareto front."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.errors import StageError
from optismith.results import Accuracy, ConfigResult, LatencyStats, Selection, StageRecord, VariantBenchmark
from optismith.spec import ModelOptimizationSpec
from optismith.stages.select import Gates, SelectStage, pareto_front, select
from tests.stages.fake_runtimes import fake_variant, make_run, manifest, store_record


def _stats(p50: float, p99: float | None = None) -> LatencyStats:
    p99 = p99 if p99 is not None else p50 * 1.5
    return LatencyStats(
        p50_ms=p50,
        p90_ms=p50 * 1.2,
        p99_ms=p99,
        mean_ms=p50 * 1.1,
        ci95_low_ms=p50 * 0.98,
        ci95_high_ms=p50 * 1.02,
        samples=50,
    )


def bench(
    variant: str,
    p50: float,
    *,
    target: str = "cpu",
    batch: int = 1,
    p99: float | None = None,
    stable: bool = True,
    baseline_p50: float = 3.0,
    status: str = "built",
) -> VariantBenchmark:
    config = ConfigResult(
        batch_size=batch,
        threads=1,
        latency=_stats(p50, p99),
        baseline_latency=_stats(baseline_p50),
        speedup=baseline_p50 / p50,
        throughput_per_s=batch / (p50 * 1.1 / 1e3),
        stable=stable,
        rounds=50,
    )
    if status != "built":
        return VariantBenchmark(variant=variant, target=target, status=status, reason="runtime missing")  # type: ignore[arg-type]
    return VariantBenchmark(
        variant=variant, target=target, status="built", configs=[config], best_by_batch={str(batch): config}
    )


def acc(variant: str, drop: float, target: str = "cpu") -> Accuracy:
    return Accuracy(
        variant=variant, target=target, metric="top1", value=0.95 - drop, drop=drop, samples=100, labelled=True
    )


def _spec(tmp_path: Path, **constraints: str) -> ModelOptimizationSpec:
    return manifest(tmp_path, selection={"constraints": constraints}).spec


SIZES = {"tf-savedmodel": 400_000, "tflite-fp32": 100_000, "tflite-int8": 30_000, "onnx-fp32": 120_000}


def test_the_fastest_variant_that_passes_the_gates_wins(tmp_path: Path) -> None:
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("tflite-int8", 0.5),
        bench("tflite-fp32", 1.0),
        bench("onnx-fp32", 1.5),
    ]
    accuracy = [acc("tf-savedmodel", 0.0), acc("tflite-int8", 0.05), acc("tflite-fp32", 0.002), acc("onnx-fp32", 0.0)]
    selection, unstable = select(
        benchmarks,
        accuracy,
        SIZES,
        objective="latencyP50",
        batch=1,
        gates=Gates.from_spec(_spec(tmp_path, maxAccuracyDrop="1%")),
    )
    assert selection.outcome == "selected"
    assert (selection.winner, selection.winner_target) == ("tflite-fp32", "cpu")
    assert "tflite-fp32" in selection.message and "3.00x" in selection.message
    by_name = {c.variant: c for c in selection.candidates}
    assert not by_name["tflite-int8"].passed
    assert by_name["tflite-int8"].reasons == ["accuracy drop 5.00% exceeds maxAccuracyDrop 1%"]
    assert by_name["tf-savedmodel"].passed and by_name["onnx-fp32"].passed
    assert [c.variant for c in selection.candidates[:3]] == ["tflite-fp32", "onnx-fp32", "tf-savedmodel"]
    assert by_name["tflite-fp32"].objective_value == 1.0 and by_name["tflite-fp32"].size_bytes == 100_000
    assert unstable == []


def test_impossible_constraints_give_no_variant_passed(tmp_path: Path) -> None:
    benchmarks = [bench("tf-savedmodel", 3.0), bench("tflite-fp32", 1.0)]
    accuracy = [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.0)]
    selection, _ = select(
        benchmarks,
        accuracy,
        SIZES,
        objective="latencyP50",
        batch=1,
        gates=Gates.from_spec(_spec(tmp_path, maxLatency="1us", maxSize="1k")),
    )
    assert selection.outcome == "no-variant-passed"
    assert selection.winner is None and selection.winner_target is None
    assert selection.message.startswith("no variant passed the gates")
    assert "too slow" in selection.message and "too large" in selection.message
    assert "Fix: " in selection.message and "maxLatency" in selection.message
    for candidate in selection.candidates:
        assert not candidate.passed
        assert any("exceeds maxLatency 1us" in r for r in candidate.reasons)
        assert any("exceeds maxSize 1k" in r for r in candidate.reasons)


def test_a_variant_without_an_accuracy_measurement_cannot_pass(tmp_path: Path) -> None:
    selection, _ = select(
        [bench("tf-savedmodel", 3.0), bench("tflite-fp32", 1.0)],
        [acc("tf-savedmodel", 0.0)],
        SIZES,
        objective="latencyP50",
        batch=1,
        gates=Gates.from_spec(_spec(tmp_path)),
    )
    assert selection.winner == "tf-savedmodel"
    loser = next(c for c in selection.candidates if c.variant == "tflite-fp32")
    assert not loser.passed and loser.accuracy_drop is None
    assert "no accuracy measurement" in loser.reasons[0]


def test_skipped_and_unmeasured_variants_are_kept_with_reasons(tmp_path: Path) -> None:
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("openvino-fp32", 1.0, status="skipped"),
        bench("tflite-fp32", 1.0, batch=8),
    ]
    accuracy = [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.0)]
    selection, _ = select(
        benchmarks, accuracy, SIZES, objective="latencyP50", batch=1, gates=Gates.from_spec(_spec(tmp_path))
    )
    by_name = {c.variant: c for c in selection.candidates}
    assert "not measured on cpu (skipped): runtime missing" in by_name["openvino-fp32"].reasons
    assert "not measured at batch size 1" in by_name["tflite-fp32"].reasons
    assert selection.winner == "tf-savedmodel"


def test_unstable_measurements_are_allowed_but_flagged(tmp_path: Path) -> None:
    selection, unstable = select(
        [bench("tf-savedmodel", 3.0), bench("tflite-fp32", 1.0, stable=False)],
        [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.0)],
        SIZES,
        objective="latencyP50",
        batch=1,
        gates=Gates.from_spec(_spec(tmp_path)),
    )
    assert selection.winner == "tflite-fp32"
    assert unstable == ["tflite-fp32@cpu"]
    assert "did not stabilize" in selection.message


@pytest.mark.parametrize(
    ("objective", "winner"),
    [
        ("latencyP50", "tflite-fp32"),  # p50 1.0 beats 1.2
        ("latencyP99", "onnx-fp32"),  # but its p99 tail is worse
        ("throughput", "tflite-fp32"),
        ("size", "tflite-int8"),
    ],
)
def test_objectives(tmp_path: Path, objective: str, winner: str) -> None:
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("tflite-fp32", 1.0, p99=5.0),
        bench("onnx-fp32", 1.2, p99=1.5),
        bench("tflite-int8", 2.0),
    ]
    accuracy = [acc(name, 0.0) for name in ("tf-savedmodel", "tflite-fp32", "onnx-fp32", "tflite-int8")]
    selection, _ = select(
        benchmarks,
        accuracy,
        SIZES,
        objective=objective,
        batch=1,  # type: ignore[arg-type]
        gates=Gates.from_spec(_spec(tmp_path)),
    )
    assert selection.winner == winner


def test_the_winner_may_come_from_any_target(tmp_path: Path) -> None:
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("tflite-fp32", 1.0),
        bench("tf-savedmodel", 0.4, target="gpu"),
        bench("tflite-fp32", 0.9, target="gpu"),
    ]
    accuracy = [
        acc("tf-savedmodel", 0.0),
        acc("tflite-fp32", 0.0),
        acc("tf-savedmodel", 0.0, "gpu"),
        acc("tflite-fp32", 0.0, "gpu"),
    ]
    selection, _ = select(
        benchmarks, accuracy, SIZES, objective="latencyP50", batch=1, gates=Gates.from_spec(_spec(tmp_path))
    )
    assert (selection.winner, selection.winner_target) == ("tf-savedmodel", "gpu")
    assert len(selection.candidates) == 4


def test_pareto_front_on_a_constructed_example() -> None:
    points = [
        (1.0, 100.0, 0.02),  # fastest: on the front
        (2.0, 50.0, 0.01),  # smaller and more accurate: on the front
        (2.0, 60.0, 0.01),  # dominated by the one above (bigger, otherwise equal)
        (3.0, 10.0, 0.05),  # smallest: on the front
        (4.0, 100.0, 0.0),  # most accurate: on the front
        (5.0, 200.0, 0.03),  # dominated by everything above
        None,  # not measured: takes no part
        (1.0, 100.0, 0.02),  # a duplicate of the first: neither dominates the other
    ]
    assert pareto_front(points) == [True, True, False, True, True, False, False, True]


def test_candidates_carry_pareto_marks(tmp_path: Path) -> None:
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("tflite-fp32", 1.0),
        bench("onnx-fp32", 1.5),
        bench("tflite-int8", 2.0),
    ]
    accuracy = [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.0), acc("onnx-fp32", 0.0), acc("tflite-int8", 0.03)]
    selection, _ = select(
        benchmarks, accuracy, SIZES, objective="latencyP50", batch=1, gates=Gates.from_spec(_spec(tmp_path))
    )
    marks = {c.variant: c.pareto for c in selection.candidates}
    # onnx-fp32 is slower, bigger and no more accurate than tflite-fp32; tf-savedmodel likewise.
    assert marks == {"tflite-fp32": True, "onnx-fp32": False, "tflite-int8": True, "tf-savedmodel": False}


def _records(ctx_target: str, benchmarks: list[VariantBenchmark], accuracy: list[Accuracy]) -> list[StageRecord]:
    common = {"status": "succeeded", "started_at": "", "finished_at": "", "duration_seconds": 1.0, "target": ctx_target}
    return [
        StageRecord(stage="benchmark", benchmarks=benchmarks, **common),  # type: ignore[arg-type]
        StageRecord(stage="evaluate", accuracy=accuracy, **common),
    ]  # type: ignore[arg-type]


def test_the_stage_reads_every_target_and_records_the_selection(tmp_path: Path) -> None:
    model = manifest(tmp_path, targets=[{"name": "cpu"}, {"name": "gpu", "kind": "gpu"}])
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel", size_bytes=400_000), fake_variant("tflite-fp32", size_bytes=100_000)],
        model=model,
        target=None,
    )
    for record in _records(
        "cpu",
        [bench("tf-savedmodel", 3.0), bench("tflite-fp32", 1.0)],
        [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.001)],
    ):
        store_record(ctx, record)
    record = SelectStage().run(ctx)
    selection = Selection.model_validate(record.payload["selection"])
    assert selection.winner == "tflite-fp32"
    assert next(c for c in selection.candidates if c.variant == "tflite-fp32").size_bytes == 100_000
    assert record.payload["targets_without_results"] == ["gpu"]
    assert "gpu" in record.message


def test_the_stage_needs_at_least_one_benchmark(tmp_path: Path) -> None:
    ctx = make_run(tmp_path, [fake_variant("tf-savedmodel")], target=None)
    with pytest.raises(StageError, match="no target has a successful benchmark"):
        SelectStage().run(ctx)


def test_latency_ranking_uses_the_paired_speedup_not_drifting_absolute_times(tmp_path: Path) -> None:
    # onnx-fp32 was measured while the host was busy: its absolute p50 is lower than tflite-fp32's only
    # because its paired baseline ran faster too. Against its own baseline it is the slower one.
    benchmarks = [
        bench("tf-savedmodel", 3.0),
        bench("tflite-fp32", 1.0, baseline_p50=4.0),
        bench("onnx-fp32", 0.9, baseline_p50=2.0),
    ]
    accuracy = [acc("tf-savedmodel", 0.0), acc("tflite-fp32", 0.0), acc("onnx-fp32", 0.0)]
    selection, _ = select(
        benchmarks,
        accuracy,
        SIZES,
        objective="latencyP50",
        batch=1,
        gates=Gates.from_spec(_spec(tmp_path, maxAccuracyDrop="1%")),
    )
    assert selection.winner == "tflite-fp32"  # 4.0x paired speedup beats 2.2x
    by_name = {c.variant: c for c in selection.candidates}
    assert by_name["tflite-fp32"].objective_value == pytest.approx(3.0 / 4.0)  # median baseline 3.0 / speedup
    assert by_name["onnx-fp32"].latency_p50_ms == 0.9  # the raw measurement is still reported
