"""The bench zoo's sources (LSTM, transformer, EfficientNetB0) are selectable and build (tiny shapes),
and issue 11's peer goals are judged over every model and batch."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

import bench.model_speed as model_speed
from bench.sources import MODEL_NAMES, model_names


def test_the_zoo_models_are_selectable_and_unknown_names_are_refused() -> None:
    assert model_names("lstm,transformer,efficientnetb0") == ["lstm", "transformer", "efficientnetb0"]
    assert {"lstm", "transformer", "efficientnetb0"} <= set(MODEL_NAMES)
    assert model_speed.parse_args(["--models", "lstm"]).models == ["lstm"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown model"):
        model_names("lstm,gpt")


def test_token_inputs_stay_integers() -> None:
    tokens = np.arange(6, dtype=np.int64).reshape(3, 2)
    assert model_speed.batch_input(model_speed._input_array(tokens), 4).dtype == np.int32
    assert model_speed._input_array(np.zeros((1, 2), np.float64)).dtype == np.float32


def _summary(model: str, batch: int, gated_peer_speed: float | None, speedup: float = 1.0) -> dict[str, object]:
    return {"model": model, "batch": batch, "gated_peer_speed": gated_peer_speed, "winner_speedup": speedup,
            **({"sequence_speedup_goal_met": speedup >= 2.0} if model in ("lstm", "transformer") and batch == 1
               else {})}


def test_peer_goals_need_every_batch_ahead_and_two_models_well_ahead() -> None:
    met = model_speed.peer_goals([_summary("resnet50", 1, 1.2), _summary("resnet50", 8, 1.16),
                                  _summary("lstm", 1, 1.3, speedup=2.5), _summary("digits", 1, 1.0)])
    assert met[0].endswith("every model and batch: met")
    assert "models: met (lstm, resnet50)" in met[1]
    assert met[2] == "- lstm b1: winner 2.50x the baseline (goal ≥ 2.0x): met"
    missed = model_speed.peer_goals([_summary("resnet50", 1, 1.2), _summary("resnet50", 8, 0.9),
                                     _summary("transformer", 1, 1.5, speedup=1.5)])
    assert "MISSED on resnet50 b8 (0.900x)" in missed[0]
    assert "models: MISSED (transformer)" in missed[1]  # resnet50 is behind at batch 8
    assert missed[2].endswith("(goal ≥ 2.0x): MISSED")


def test_the_summary_carries_the_speed_over_the_gated_peer() -> None:
    rows = [
        {"batch": 1, "candidate": "tf-savedmodel", "kind": "baseline", "p50_ms": 10.0, "speedup": 1.0,
         "passes_gate": True},
        {"batch": 1, "candidate": "onnx-fp32", "kind": "optismith", "p50_ms": 4.0, "speedup": 2.5,
         "passes_gate": True},
        {"batch": 1, "candidate": "peer:ort", "kind": "peer", "p50_ms": 5.0, "speedup": 2.0, "passes_gate": True},
    ]
    summary = model_speed.summarize("lstm", 1, rows, "onnx-fp32")
    assert summary["gated_peer_speed"] == pytest.approx(1.25) and summary["sequence_speedup_goal_met"]


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("name", ["lstm", "transformer", "efficientnetb0"])
def test_the_zoo_sources_build_a_saved_model_and_data(name: str, tmp_path: Path) -> None:
    from bench.sources_zoo import make_zoo_source

    source = make_zoo_source(name, tmp_path, tiny=True)
    assert (source.saved_model / "saved_model.pb").is_file()
    with np.load(source.calibration) as data:
        x = data["x"]
    assert len(x) == source.calibration_samples
    if name == "efficientnetb0":
        assert x.dtype == np.float32 and x.shape[1:] == (32, 32, 3) and not source.labelled
    else:
        with np.load(source.evaluation) as data:
            assert x.dtype == np.int32 and set(np.unique(data["y"])) <= {0, 1} and source.labelled
