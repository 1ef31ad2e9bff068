"""OpenVINO peers run by hand, the way OpenVINO's and NNCF's documentation shows a user:

* openvino-bf16: `openvino.convert_model(saved_model)` + `save_model` (its default fp16-compressed
  weights), compiled for CPU with `INFERENCE_PRECISION_HINT=bf16` set explicitly (what OpenVINO picks by
  itself on CPUs with bf16; the plain `openvino` peer in bench/peers.py is that default).
* openvino-nncf-int8: the same conversion, then `nncf.quantize(model, nncf.Dataset(calibration))` with
  NNCF's defaults (performance preset, a 300-sample subset, fast bias correction), saved with
  `save_model`'s defaults and compiled for CPU with default hints (the float remainder then runs in bf16
  where the CPU has it, as a user would get it).

Both are registered by bench/peers.py:build_peers.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata, util
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers import Peer

Builder = tuple[str, Callable[[], Peer]]


class HintedPredictor:
    """An IR compiled for CPU with the given hints (none: OpenVINO's defaults) and the bench's threads."""

    def __init__(self, path: Path, threads: int, hints: dict[str, str]) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(path), "CPU", {**hints, "INFERENCE_NUM_THREADS": threads})
        self.output = self.compiled.output(0)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled([x])[self.output])

    def close(self) -> None:
        del self.compiled


def _peer(name: str, path: Path, hints: dict[str, str], details: dict[str, Any]) -> Peer:
    probe = HintedPredictor(path, 1, hints)
    details = {**details, "inference_precision": probe.precision, "size_bytes": path.with_suffix(".bin").stat().st_size}
    probe.close()
    return Peer(name, "openvino", lambda threads: HintedPredictor(path, threads, hints), details=details)


def openvino_bf16_peer(saved_model: Path, out: Path) -> Peer:
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(saved_model)), str(out))
    return _peer("openvino-bf16", out, {"INFERENCE_PRECISION_HINT": "bf16"},
                 {"weights": "fp16-compressed IR (save_model default)", "hint": "INFERENCE_PRECISION_HINT=bf16"})


def nncf_int8_peer(saved_model: Path, out: Path, calibration: np.ndarray) -> Peer:
    import nncf
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(saved_model))
    samples = [calibration[i:i + 1] for i in range(calibration.shape[0])]
    ov.save_model(nncf.quantize(model, nncf.Dataset(samples)), str(out))
    return _peer("openvino-nncf-int8", out, {},
                 {"quantization": "nncf.quantize defaults", "nncf": metadata.version("nncf"),
                  "calibration_samples": len(samples)})


def openvino_peer_builders(saved_model: Path, calibration: np.ndarray, workdir: Path) -> list[Builder]:
    """(name, build) for each OpenVINO peer run by hand (build_peers records a build that raises)."""
    def missing(*packages: str) -> str:
        return " and ".join(p for p in packages if util.find_spec(p) is None)

    def bf16() -> Peer:
        if missing("openvino"):
            return Peer("openvino-bf16", "openvino", None, skipped="openvino not installed")
        return openvino_bf16_peer(saved_model, workdir / "openvino-bf16" / "model.xml")

    def int8() -> Peer:
        if missing("openvino", "nncf"):
            return Peer("openvino-nncf-int8", "openvino", None, skipped=f"{missing('openvino', 'nncf')} not installed")
        return nncf_int8_peer(saved_model, workdir / "openvino-nncf-int8" / "model.xml", calibration)

    return [("openvino-bf16", bf16), ("openvino-nncf-int8", int8)]
