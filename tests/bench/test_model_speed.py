"""The model-speed bench: how rows become the summary and goals, and (slow) a real run on the digits CNN
with Optismith's pipeline, the peers and interleaved timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.model_speed as model_speed
import bench.paired_penalty as paired_penalty


def _row(name: str, kind: str, p50: float, drop: float = 0.0, batch: int = 1) -> dict[str, Any]:
    return {
        "batch": batch,
        "candidate": name,
        "kind": kind,
        "threads": 1,
        "p50_ms": p50,
        "p90_ms": p50 * 1.2,
        "ci95_rel": 0.01,
        "stable": True,
        "speedup": 10.0 / p50,
        "gflops": 1.0 / p50,
        "accuracy_drop": drop,
        "accuracy_metric": "agreement",
        "passes_gate": drop <= model_speed.MAX_ACCURACY_DROP,
    }


ROWS = [
    _row("tf-savedmodel", "baseline", 10.0),
    _row("tflite-int8", "optismith", 2.0),
    _row("onnx-int8", "optismith", 2.2),
    _row("peer:tflite-xnnpack-int8", "peer", 1.0, drop=0.05),
    _row("peer:ort-fp32", "peer", 2.5),
]


def test_summary_compares_the_winner_with_the_fastest_peer_and_the_fastest_gated_peer() -> None:
    summary = model_speed.summarize("mobilenetv2", 1, ROWS, "onnx-int8")
    assert summary["fastest_peer"] == "peer:tflite-xnnpack-int8"
    assert summary["winner_over_fastest_peer"] == pytest.approx(2.2)
    assert summary["fastest_gated_peer"] == "peer:ort-fp32"  # the int8 peer fails the 1% gate
    assert summary["winner_over_fastest_gated_peer"] == pytest.approx(0.88)
    assert summary["best_variant"] == "tflite-int8" and summary["best_variant_over_fastest_peer"] == 2.0
    assert not summary["peer_goal_met"] and summary["speedup_goal_met"]  # 10 / 2.2 >= 3


def test_goals_say_met_or_missed_for_every_model_and_batch() -> None:
    results = [
        {
            "summary": [
                model_speed.summarize("mobilenetv2", 1, ROWS, "tflite-int8"),
                model_speed.summarize(
                    "digits",
                    1,
                    [r for r in ROWS if r["kind"] != "peer"] + [_row("peer:ort-fp32", "peer", 2.05)],
                    "tflite-int8",
                ),
            ]
        }
    ]
    lines = model_speed.goals(results)
    assert "mobilenetv2 b1: winner/fastest peer 2.000 (goal ≤ 1.05): MISSED" in lines[0]
    assert "5.00x the baseline (goal ≥ 3.0x): met" in lines[1]
    assert "digits b1: winner/fastest peer 0.976 (goal ≤ 1.05): met" in lines[2]


def test_accuracy_drop_uses_labels_when_there_are_some_else_agreement() -> None:
    reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    outputs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    assert model_speed.accuracy_drop(outputs, reference, None) == (0.25, "agreement")
    labels = np.array([0, 1, 1, 1])  # the candidate's one disagreement fixes a mistake of the baseline
    assert model_speed.accuracy_drop(outputs, reference, labels) == (-0.25, "top1")


def test_fraction_of_peak_and_the_printed_tables() -> None:
    rows = [dict(r) for r in ROWS]
    results = [
        {
            "model": "mobilenetv2",
            "flops_per_sample": 600_000_000,
            "winners": {"1": "tflite-int8"},
            "rows": rows,
            "skipped": {"openvino-fp32": "openvino not installed"},
            "summary": [model_speed.summarize("mobilenetv2", 1, rows, "tflite-int8")],
        }
    ]
    model_speed.add_fraction_of_peak(results, peak_gflops=2.0)
    assert rows[1]["fraction_of_peak"] == pytest.approx(0.25)
    document = {
        "started_at": "now",
        "machine": {"cpu_model": "cpu", "cores": 2},
        "peak": {"peak_gflops": 2.0},
        "settings": {"threads": [1, 2]},
        "models": results,
        "load": {"loadavg_1m_mean": 1.0, "loadavg_1m_max": 2.0, "other_processes_cores_mean": 0.5},
    }
    text = model_speed.render(document)
    assert "| 1 | tflite-int8 **(winner)** | 1 | 2.000 |" in text
    assert "Not measured: openvino-fp32: openvino not installed" in text
    assert "| mobilenetv2 | 1 | 10.000 | tflite-int8 | 2.000 | 5.00x | peer:tflite-xnnpack-int8 |" in text


@pytest.mark.slow
@pytest.mark.tf
def test_a_quick_run_on_digits_measures_baseline_variants_and_peers(
    digits_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "digits").symlink_to(digits_dir)  # the session's trained model, not a new one
    out = tmp_path / "speed.json"
    code = model_speed.main(
        [
            "--models",
            "digits",
            "--batches",
            "1",
            "--threads",
            "1",
            "--seconds",
            "0.5",
            "--min-rounds",
            "3",
            "--workdir",
            str(tmp_path),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text())
    result = document["models"][0]
    rows = {r["candidate"]: r for r in result["rows"]}
    assert rows["tf-savedmodel"]["kind"] == "baseline" and rows["tf-savedmodel"]["speedup"] == 1.0
    assert result["winners"]["1"] in rows and rows[result["winners"]["1"]]["kind"] == "optismith"
    for peer in ("peer:tflite-xnnpack-fp32", "peer:tflite-xnnpack-int8", "peer:ort-fp32", "peer:ort-int8"):
        assert rows[peer]["kind"] == "peer" and rows[peer]["p50_ms"] > 0, result["skipped"]
    assert all(r["rounds"] >= 3 and r["p90_ms"] >= r["p50_ms"] > 0 for r in rows.values())
    assert rows["tflite-fp32"]["passes_gate"] and rows["peer:tflite-xnnpack-fp32"]["accuracy_drop"] < 0.01
    assert result["flops_per_sample"] > 0 and 0 < rows["tflite-fp32"]["fraction_of_peak"] < 2
    assert document["peak"]["peak_gflops"] > 1
    assert "### Summary" in capsys.readouterr().out

    penalty = paired_penalty.run(tmp_path / "optismith" / "digits" / "run", ["tflite-fp32", "tftrt-fp16"], [1], 5)
    assert [(r["variant"], r["threads"]) for r in penalty] == [("tflite-fp32", 1)]
    assert all(v > 0 for k, v in penalty[0].items() if k.endswith("_ms"))


def test_the_paired_penalty_table_shows_paired_over_alone() -> None:
    text = paired_penalty.render(
        [
            {
                "variant": "tflite-int8",
                "threads": 2,
                "paired_rounds_ms": 1.24,
                "after_baseline_ms": 1.34,
                "after_baseline_and_one_call_ms": 1.13,
                "alone_ms": 1.03,
            }
        ]
    )
    assert "| tflite-int8 | 2 | 1.240 | 1.340 | 1.130 | 1.030 | 1.20x |" in text


def test_an_unknown_model_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        model_speed.parse_args(["--models", "digits,bogus"])
    assert "unknown model(s) ['bogus']: use digits, mobilenetv2, resnet50" in capsys.readouterr().err
    assert model_speed.parse_args(["--models", "digits, resnet50"]).models == ["digits", "resnet50"]
