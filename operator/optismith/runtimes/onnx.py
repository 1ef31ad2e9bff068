"""ONNX models through ONNX Runtime: the CPU execution provider on CPU targets, the CUDA (or TensorRT)
execution provider on GPU targets (optismith.runtimes.onnx_cuda), every graph optimization on."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from optismith.runtimes.base import DEVICE_OPTION, Device, Runtime, Session
from optismith.runtimes.onnx_session import OnnxSession

__all__ = ["OnnxRuntime", "OnnxSession"]


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    devices: ClassVar[tuple[Device, ...]] = ("cpu", "gpu")

    @classmethod
    def availability(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime not installed: pip install 'optismith[onnx]'"
        return None

    @classmethod
    def availability_on(cls, device: Device, options: dict[str, Any] | None = None) -> str | None:
        missing = cls.availability()
        if missing is not None or device == "cpu":
            return missing
        from optismith.runtimes.onnx_cuda import gpu_unavailable

        return gpu_unavailable(options or {})

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        options = options or {}
        if options.get(DEVICE_OPTION, "cpu") == "gpu":
            from optismith.runtimes.onnx_cuda import load_on_gpu

            return load_on_gpu(Path(artifact), threads, options)
        return OnnxSession.on_cpu(Path(artifact), threads)

    @classmethod
    def versions(cls) -> dict[str, str]:
        found = {}
        for package in ("onnxruntime", "onnxruntime-gpu", "onnx"):
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        return found
