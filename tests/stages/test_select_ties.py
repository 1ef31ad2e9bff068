"""Selection on a noisy host: the final measures on while the fastest finalists are within noise of each
other, and a tie that remains is reported and broken by the smaller artifact (then the lower p50)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optismith.results import Accuracy, Candidate, Selection, StageRecord
from optismith.stages.benchmark import BenchmarkStage
from optismith.stages.report.markdown import _finalists_line
from optismith.stages.select import SelectStage, break_tie
from tests.stages.fake_runtimes import fake_variant, install_fakes, make_run, manifest, store_record, with_target

TIMING = {"batchSizes": [1], "threads": [1], "timeBudget": "300ms", "minRounds": 10, "finalists": 4}


@pytest.fixture(autouse=True)
def _fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fakes(monkeypatch)


def _measure_and_select(tmp_path: Path, variants: list[Any], tie_budget: str) -> tuple[StageRecord, Selection]:
    model = manifest(tmp_path, benchmark={**TIMING, "tieBudget": tie_budget})
    ctx = make_run(tmp_path, variants, model=model)
    record = BenchmarkStage().run(ctx)
    store_record(ctx, record)
    accuracy = [Accuracy(variant=r.name, target="cpu", metric="agreement", value=1.0, drop=0.0, samples=16,
                         labelled=False) for r, _ in variants]
    store_record(ctx, StageRecord(stage="evaluate", status="succeeded", started_at="", finished_at="",
                                  duration_seconds=1.0, target="cpu", accuracy=accuracy))
    selected = SelectStage().run(with_target(ctx, None))
    return record, Selection.model_validate(selected.payload["selection"])


@pytest.mark.slow
def test_overlapping_finalists_get_more_rounds_then_a_tie_broken_by_the_smaller_artifact(tmp_path: Path) -> None:
    # The same work: no number of rounds tells them apart.
    variants = [fake_variant("tf-savedmodel", units=4, size_bytes=400_000),
                fake_variant("tflite-fp32", units=1, size_bytes=200_000),
                fake_variant("onnx-fp32", units=1, size_bytes=50_000)]
    record, selection = _measure_and_select(tmp_path, variants, tie_budget="1s")
    assert "1" in record.payload["final"], (record.payload["final"], record.benchmarks)
    final = record.payload["final"]["1"]
    assert final["extra_rounds"] > 0 and final["rounds"] > final["extra_rounds"], final
    assert final["tie"] and set(final["contenders"]) == {"tflite-fp32", "onnx-fp32"}, final
    for name in ("tflite-fp32", "onnx-fp32"):
        entry = final["finalists"][name]
        assert entry["ci95_low_ms"] <= entry["round_p50_ms"] <= entry["ci95_high_ms"]
    assert selection.winner == "onnx-fp32", selection.message
    assert selection.tie and set(selection.tied) == {"tflite-fp32", "onnx-fp32"}
    assert selection.tie_break is not None and selection.tie_break.startswith("smaller artifact")
    assert selection.extra_rounds == final["extra_rounds"]
    assert [f.variant for f in selection.finalists][-1] == "tf-savedmodel"  # the baseline ran in the rounds too
    assert {f.variant for f in selection.finalists} == {"tflite-fp32", "onnx-fp32", "tf-savedmodel"}
    assert "Tie:" in selection.message and "tied (within noise)" in selection.message
    assert "**Tie**" in _finalists_line(selection) and "smaller artifact" in _finalists_line(selection)


@pytest.mark.slow
def test_a_clearly_faster_finalist_wins_without_extra_rounds_even_when_larger(tmp_path: Path) -> None:
    variants = [fake_variant("tf-savedmodel", units=6, size_bytes=400_000),
                fake_variant("tflite-fp32", units=2, size_bytes=200_000),
                fake_variant("onnx-fp32", units=3, size_bytes=50_000)]
    record, selection = _measure_and_select(tmp_path, variants, tie_budget="2s")
    assert "1" in record.payload["final"], (record.payload["final"], record.benchmarks)
    final = record.payload["final"]["1"]
    assert set(final["finalists"]) == {"tflite-fp32", "onnx-fp32"}
    assert not final["tie"] and final["contenders"] == ["tflite-fp32"], final
    assert final["extra_rounds"] == 0, final
    assert selection.winner == "tflite-fp32" and not selection.tie and selection.tie_break is None
    assert "No tie" in _finalists_line(selection)


def _candidate(name: str, size: int, passed: bool = True) -> Candidate:
    return Candidate(variant=name, target="cpu", objective_value=1.0, latency_p50_ms=1.0, latency_p99_ms=1.0,
                     throughput_per_s=1.0, size_bytes=size, accuracy_drop=0.0, speedup=2.0, passed=passed)


def _final(**intervals: tuple[float, float, float]) -> dict[str, Any]:
    return {"extra_rounds": 7, "finalists": {name: {"round_p50_ms": p50, "ci95_low_ms": low, "ci95_high_ms": high}
                                             for name, (low, p50, high) in intervals.items()}}


def test_the_tie_break_takes_the_smaller_artifact_then_the_lower_p50() -> None:
    big, small = _candidate("big", 300), _candidate("small", 100)
    overlapping = _final(big=(0.9, 1.0, 1.1), small=(1.05, 1.08, 1.2))
    outcome = break_tie(big, [big, small], overlapping)
    assert outcome.winner.variant == "small" and outcome.tied == ("big", "small") and outcome.extra_rounds == 7
    assert outcome.tie_break == "smaller artifact (100 B vs 300 B)"
    same_size = _candidate("other", 300)
    outcome = break_tie(same_size, [same_size, big], _final(other=(0.9, 1.05, 1.2), big=(0.95, 1.0, 1.1)))
    assert outcome.winner.variant == "big" and outcome.tie_break is not None and "lower p50" in outcome.tie_break


def test_no_tie_when_intervals_are_apart_or_the_close_one_failed_a_gate() -> None:
    big, small = _candidate("big", 300), _candidate("small", 100)
    apart = break_tie(big, [big, small], _final(big=(0.9, 1.0, 1.1), small=(1.2, 1.3, 1.4)))
    assert apart.winner.variant == "big" and apart.tie_break is None and not apart.tied
    assert [f.variant for f in apart.finalists] == ["big", "small"]
    gated = break_tie(big, [big], _final(big=(0.9, 1.0, 1.1), small=(0.95, 1.0, 1.05)))
    assert gated.winner.variant == "big" and gated.tie_break is None
    assert [f.passed for f in gated.finalists] == [True, False]
    assert break_tie(big, [big, small], None).winner is big


def test_a_baseline_winner_within_noise_of_a_smaller_variant_gives_way_to_it() -> None:
    # Seen in a bench run on the LSTM: the baseline ranked first by 2%, with the final's intervals of two
    # smaller Grappler variants overlapping its own.
    baseline, grappler = _candidate("tf-savedmodel", 1_179_348), _candidate("tf-grappler", 858_033)
    final = {"extra_rounds": 62, "finalists": {"tf-grappler": {"round_p50_ms": 2.108, "ci95_low_ms": 2.047,
                                                               "ci95_high_ms": 2.247}},
             "baseline": {"variant": "tf-savedmodel", "round_p50_ms": 2.05, "ci95_low_ms": 2.0,
                          "ci95_high_ms": 2.1}}
    outcome = break_tie(baseline, [baseline, grappler], final)
    assert outcome.winner.variant == "tf-grappler" and outcome.tied == ("tf-savedmodel", "tf-grappler")
    assert outcome.tie_break is not None and outcome.tie_break.startswith("smaller artifact")
