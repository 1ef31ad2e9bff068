"""Recurrent models (Keras 3 LSTM/GRU/BiLSTM on int32 tokens, a TF1 while loop): which variants build.

TFLite converts the Keras ones at a fixed batch of 1 (the SavedModel path cannot lower their tensor lists); full
int8 TFLite is refused (TF 2.21's calibrator segfaults on While loops); ONNX goes through tf2onnx's
LSTM/GRU rewriters on a freeze that keeps the While loops functional; OpenVINO converts that ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.zoo import recurrent_models
from tests.zoo.verdicts import Verdicts, build_variants

pytestmark = [pytest.mark.tf, pytest.mark.slow]

TFLITE_FLOAT = ["tflite-fp32", "tflite-fp16", "tflite-dynamic-int8"]
VARIANTS = [*TFLITE_FLOAT, "tflite-int8", "onnx-fp32", "onnx-int8", "openvino-fp32"]


def _assert(verdicts: Verdicts, built: set[str], failed: set[str]) -> None:
    assert verdicts.built() >= built and not built & failed, verdicts.explain()
    assert {name for name in failed if verdicts.status(name) == "failed"} == failed, verdicts.explain()


def _assert_fixed_batch(verdicts: Verdicts) -> None:
    for name in TFLITE_FLOAT:
        details = verdicts.records[name].details
        assert details["fixed_batch"] == 1, verdicts.explain()
        assert details["why_fixed_batch"].startswith("the SavedModel converted with a dynamic batch"), details
    assert "segfaults" in (verdicts.records["tflite-int8"].reason or ""), verdicts.explain()


@pytest.mark.parametrize("cell,bidirectional", [("lstm", False), ("lstm", True), ("gru", False)],
                         ids=["lstm", "bilstm", "gru"])
def test_keras_recurrent(tmp_path: Path, cell: str, bidirectional: bool) -> None:
    source = recurrent_models.keras_text_classifier(tmp_path / "source", cell, bidirectional=bidirectional)
    verdicts = build_variants(source, tmp_path, VARIANTS)
    _assert(verdicts, {*TFLITE_FLOAT, "onnx-fp32", "onnx-int8", "openvino-fp32"}, {"tflite-int8"})
    _assert_fixed_batch(verdicts)
    # tf2onnx's rewriters turn Keras 3's LSTM into ONNX LSTM ops, but leave its GRU a generic Loop, which
    # OpenVINO's ONNX frontend refuses: OpenVINO then converts the SavedModel itself.
    openvino_source = "onnx" if cell == "lstm" else "savedmodel"
    assert verdicts.records["openvino-fp32"].details["source"] == openvino_source, verdicts.records["openvino-fp32"]


def test_tf1_while_loop(tmp_path: Path) -> None:
    source = recurrent_models.tf1_while_loop_rnn(tmp_path / "source")
    verdicts = build_variants(source, tmp_path, VARIANTS, model={"inputs": recurrent_models.WHILE_LOOP_INPUTS,
                                                                 "outputs": recurrent_models.WHILE_LOOP_OUTPUTS})
    # ONNX and OpenVINO fail: the frozen TF1 loop stays inside a PartitionedCall (grappler does not inline
    # a function holding v1 control flow), which tf2onnx passes through unconverted.
    _assert(verdicts, set(TFLITE_FLOAT), {"tflite-int8", "onnx-fp32", "onnx-int8", "openvino-fp32"})
    assert "PartitionedCall" in (verdicts.records["onnx-fp32"].reason or ""), verdicts.explain()
    # The TF1 loop has static element shapes: TFLite takes it at a dynamic batch, no fallback needed.
    assert all("fixed_batch" not in verdicts.records[name].details for name in TFLITE_FLOAT), verdicts.explain()
    assert "segfaults" in (verdicts.records["tflite-int8"].reason or ""), verdicts.explain()
