"""The OpenVINO peers run by hand (bench/peers_openvino.py): bf16 set explicitly and NNCF int8 with its
defaults, built on the digits CNN, run, agree with TensorFlow, and are among build_peers' peers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bench.peers as peers
from bench.peers_openvino import openvino_peer_builders


@pytest.mark.slow
@pytest.mark.tf
def test_bf16_and_nncf_int8_peers_build_run_and_agree(digits_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("nncf", reason="nncf not installed (optional: optismith[openvino])")
    import tensorflow as tf

    from optismith import catalog
    from optismith.measure.cpu_features import host_flags, shortfall

    calibration = np.load(digits_dir / "data" / "calibration.npz")["x"][:50].astype(np.float32)
    x = np.load(digits_dir / "data" / "eval.npz")["x"][:64].astype(np.float32)
    serve = tf.saved_model.load(str(digits_dir / "model")).signatures["serving_default"]
    reference = next(iter(serve(tf.constant(x)).values())).numpy()
    built = {name: build() for name, build in openvino_peer_builders(digits_dir / "model", calibration, tmp_path)}
    assert set(built) == {"openvino-bf16", "openvino-nncf-int8"}
    bf16, int8 = built["openvino-bf16"], built["openvino-nncf-int8"]
    assert bf16.open is not None and int8.open is not None, (bf16.skipped, int8.skipped)
    assert int8.details["calibration_samples"] == 50 and int8.details["nncf"]
    assert "FakeQuantize" in (tmp_path / "openvino-nncf-int8" / "model.xml").read_text()
    if shortfall([catalog.BF16_CPU], host_flags()) is None:
        assert bf16.details["inference_precision"] == "bf16"
    for peer in (bf16, int8):
        predictor = peer.open(1)
        outputs = np.concatenate([predictor(x[i:i + 8]) for i in range(0, len(x), 8)])
        predictor.close()
        assert np.mean(outputs.argmax(axis=1) == reference.argmax(axis=1)) >= 0.95, peer.name
        assert not np.array_equal(outputs, reference)  # reduced precision, not a copy of the float model


def test_build_peers_registers_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []

    def fake(name: str) -> peers.Peer:
        calls.append(name)
        return peers.Peer(name, "test", None, skipped="not built in this test")

    monkeypatch.setattr(peers, "tflite_peer", lambda *a, **k: fake("tflite"))
    monkeypatch.setattr(peers, "onnx_fp32_peer", lambda *a: fake("ort-fp32"))
    monkeypatch.setattr(peers, "onnx_int8_peer", lambda *a: fake("ort-int8"))
    monkeypatch.setattr(peers, "openvino_peer", lambda *a: fake("openvino"))
    import bench.peers_openvino as by_hand

    monkeypatch.setattr(by_hand, "openvino_bf16_peer", lambda *a: fake("openvino-bf16"))
    monkeypatch.setattr(by_hand, "nncf_int8_peer", lambda *a: fake("openvino-nncf-int8"))
    built = peers.build_peers(tmp_path / "model", np.zeros((1, 8, 8, 1), np.float32), tmp_path, lambda _: None)
    names = [p.name for p in built]
    assert names[-2:] == ["openvino-bf16", "openvino-nncf-int8"], names
