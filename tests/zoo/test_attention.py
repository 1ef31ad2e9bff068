"""Zoo: a transformer encoder (Embedding + positions, MultiHeadAttention, LayerNorm, exact GELU) through every
CPU variant, asserted by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith import catalog
from tests.zoo.attention_models import transformer_classifier
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]

CPU_VARIANTS = [v.name for v in catalog._ENTRIES if not v.gpu and v.default]


def test_every_cpu_variant_builds_on_a_transformer_encoder(tmp_path: Path) -> None:
    source = transformer_classifier(tmp_path / "model", d_model=32, seq=16, heads=2)
    verdicts = build_variants(source, tmp_path, CPU_VARIANTS)
    assert set(CPU_VARIANTS) <= verdicts.built(), verdicts.explain()
    fused = verdicts.records["onnx-transformer-fp32"].details
    # The canonical rewrites are what let ONNX Runtime's optimizer fuse all three on a tf2onnx graph.
    assert fused["fused"] == {"Attention": 1, "Gelu": 1, "SkipLayerNormalization": 2}, fused
    assert "dynamic int8" in verdicts.records["onnx-transformer-dynamic-int8"].details["quantization"]


def test_transformer_variants_are_skipped_with_the_reason_on_a_cnn(tmp_path: Path) -> None:
    from tests.stages.tf_sources import GRAPH_INPUTS, GRAPH_OUTPUTS, frozen_pb

    transformer = ["onnx-transformer-fp32", "onnx-dynamic-int8", "onnx-transformer-dynamic-int8"]
    verdicts = build_variants(frozen_pb(tmp_path / "model"), tmp_path, ["onnx-fp32", *transformer],
                              model={"inputs": GRAPH_INPUTS, "outputs": GRAPH_OUTPUTS})
    assert verdicts.status("onnx-fp32") == "built", verdicts.explain()
    for name in transformer:
        assert verdicts.status(name) == "skipped", verdicts.explain()
        assert "no transformer pattern found" in verdicts.records[name].reason, verdicts.explain()


def test_bert_style_encoder_with_an_attention_mask_builds_every_onnx_variant(tmp_path: Path) -> None:
    source = transformer_classifier(tmp_path / "model", d_model=32, seq=16, heads=2, attention_mask=True)
    onnx_variants = [name for name in CPU_VARIANTS if name.startswith(("onnx", "openvino"))]
    verdicts = build_variants(source, tmp_path, onnx_variants)
    assert set(onnx_variants) <= verdicts.built(), verdicts.explain()
    fused = verdicts.records["onnx-transformer-fp32"].details["fused"]
    # Keras' masked softmax is not the mask pattern ONNX Runtime's Attention fusion knows: only the
    # LayerNorm and GELU fusions apply (see the report of issue 11).
    assert fused == {"Gelu": 1, "SkipLayerNormalization": 2}, fused
