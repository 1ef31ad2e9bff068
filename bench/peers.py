"""The peers: each tool used directly, the way its documentation shows a user, without Optismith.

* TFLite: `tf.lite.TFLiteConverter.from_saved_model`, run by the ai-edge-litert Interpreter with its
  default XNNPACK delegate; fp32, and full int8 (representative dataset, int8 builtins, float I/O).
* ONNX Runtime: `python -m tf2onnx.convert --saved-model`, then `quant_pre_process` + `quantize_static`
  with its defaults (QDQ, int8 weights and activations, per-tensor) for int8; CPU provider.
* OpenVINO: `openvino.convert_model(saved_model)` + `save_model` (its default fp16-compressed weights),
  compiled for CPU with default hints (which pick bf16 on CPUs that have it: recorded per peer); bf16
  set by hand and NNCF int8 with its defaults (bench/peers_openvino.py).

Every peer gets the same thread count as the candidates it is compared with. Models have one input and
one output (all the bench's models do), so predictors take and return one array.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ONNX_OPSET = 17


class Predictor(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass
class Peer:
    name: str
    tool: str
    open: Callable[[int], Predictor] | None  # threads -> a loaded model
    skipped: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class TFLitePredictor:
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape: tuple[int, ...] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.shape:  # a server resizes once per batch size, not per request
            self.interpreter.resize_tensor_input(self.input, list(x.shape))
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self.output))

    def close(self) -> None:
        del self.interpreter


class OrtPredictor:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: x})[0])

    def close(self) -> None:
        del self.session


class OpenVINOPredictor:
    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
        self.output = self.compiled.output(0)
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = str(precision.get_type_name() if hasattr(precision, "get_type_name") else precision)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled([x])[self.output])

    def close(self) -> None:
        del self.compiled


def _calibration_batches(calibration: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(calibration.shape[0]):
        yield calibration[start:start + 1]


def tflite_peer(saved_model: Path, out: Path, *, int8: bool, calibration: np.ndarray) -> Peer:
    import tensorflow as tf

    name = "tflite-xnnpack-int8" if int8 else "tflite-xnnpack-fp32"
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in _calibration_batches(calibration))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(converter.convert())
    return Peer(name, "ai-edge-litert (XNNPACK)", lambda threads: TFLitePredictor(out, threads),
                details={"size_bytes": out.stat().st_size})


def onnx_fp32_peer(saved_model: Path, out: Path) -> Peer:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output", str(out),
               "--opset", str(ONNX_OPSET)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tf2onnx failed: {done.stderr.strip().splitlines()[-1:]}")
    return Peer("ort-fp32", "onnxruntime", lambda threads: OrtPredictor(out, threads),
                details={"size_bytes": out.stat().st_size, "opset": ONNX_OPSET})


def onnx_int8_peer(fp32: Path, out: Path, calibration: np.ndarray) -> Peer:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_name("preprocessed.onnx")
    details: dict[str, Any] = {"format": "QDQ (quantize_static defaults)"}
    try:
        # What the ONNX Runtime docs ask for first; symbolic shape inference needs sympy (not installed).
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        details["preprocessed"] = True
    except Exception as error:
        prepared = fp32
        details["preprocessed"] = f"no: {type(error).__name__}"
    input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = _calibration_batches(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    quantize_static(str(prepared), str(out), Reader())
    details["size_bytes"] = out.stat().st_size
    return Peer("ort-int8", "onnxruntime", lambda threads: OrtPredictor(out, threads), details=details)


def openvino_peer(saved_model: Path, out: Path) -> Peer:
    if util.find_spec("openvino") is None:
        return Peer("openvino", "openvino", None, skipped="openvino not installed")
    import openvino as ov

    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(saved_model)), str(out))
    probe = OpenVINOPredictor(out, 1)
    precision = probe.precision
    probe.close()
    return Peer("openvino", "openvino", lambda threads: OpenVINOPredictor(out, threads),
                details={"inference_precision": precision, "weights": "fp16-compressed IR (save_model default)"})


def build_peers(saved_model: Path, calibration: np.ndarray, workdir: Path,
                progress: Callable[[str], None]) -> list[Peer]:
    """Every peer, each built on its own: one failing is reported, not fatal."""
    peers: list[Peer] = []
    onnx_path = workdir / "ort-fp32" / "model.onnx"
    builders: list[tuple[str, Callable[[], Peer]]] = [
        ("tflite-xnnpack-fp32", lambda: tflite_peer(saved_model, workdir / "tflite-fp32" / "model.tflite",
                                                    int8=False, calibration=calibration)),
        ("tflite-xnnpack-int8", lambda: tflite_peer(saved_model, workdir / "tflite-int8" / "model.tflite",
                                                    int8=True, calibration=calibration)),
        ("ort-fp32", lambda: onnx_fp32_peer(saved_model, onnx_path)),
        ("ort-int8", lambda: onnx_int8_peer(onnx_path, workdir / "ort-int8" / "model.onnx", calibration)),
        ("openvino", lambda: openvino_peer(saved_model, workdir / "openvino" / "model.xml")),
    ]
    from bench.peers_openvino import openvino_peer_builders  # it imports Peer from here

    builders += openvino_peer_builders(saved_model, calibration, workdir)
    for name, build in builders:
        progress(f"peer {name}: building")
        try:
            peers.append(build())
        except Exception as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            peers.append(Peer(name, "", None, skipped=f"build failed: {reason}"))
    return peers
