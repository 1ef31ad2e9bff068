"""Runtimes behind one small interface: load an artifact, feed arrays, get arrays back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Device = Literal["cpu", "gpu"]
DEVICE_OPTION = "device"  # the load option that says where a session computes (eligibility sets it)


@dataclass(frozen=True)
class IOSpec:
    name: str
    dtype: str  # numpy dtype name of what the caller feeds / receives (float32 for int8-I/O models too)
    shape: tuple[int | None, ...]  # None for dynamic dimensions


class Session(ABC):
    """A loaded model. `run` takes one array per input, in `inputs` order, in the source model's
    dtypes (float inputs stay float even for int8-I/O models: the session quantizes at the boundary),
    and returns host arrays: on a GPU, `run` is the end-to-end call, copies to and from the device included."""

    inputs: list[IOSpec]
    outputs: list[IOSpec]

    @abstractmethod
    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]: ...

    def bind(self, feeds: list[np.ndarray]) -> Callable[[], object]:
        """A call that runs the model on `feeds` the way this session serves fastest, returning when the
        results are ready. GPU sessions that keep data on the device stage `feeds` there once and leave the
        outputs there (device-resident latency); every other session just runs on host arrays."""
        return lambda: self.run(feeds)

    @property
    def device_resident(self) -> bool:
        """Whether `bind`'s calls keep inputs and outputs in device memory (then `run` is timed as well)."""
        return False

    @property
    def fixed_batch(self) -> int | None:
        """The only batch size the artifact runs at, when its first input's batch dimension is fixed (TFLite of
        recurrent models: builders/tflite_fixed_batch.py); None when any batch runs."""
        shape = self.inputs[0].shape if self.inputs else None
        return shape[0] if shape else None

    def execution(self) -> dict[str, Any]:
        """Where the session computes: e.g. {"providers": [...]}, for the benchmark record."""
        return {}

    def settings(self) -> dict[str, Any]:
        """The runtime settings this session really runs with (threads, inter-op parallelism, execution
        mode, graph optimization level, performance hints), read back from the runtime where it can say:
        recorded per measured config and in promotion.json, so a server can load the winner the same way."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Runtime(ABC):
    name: ClassVar[str]
    # The devices the runtime can compute on: a GPU target measures only runtimes that use its GPU.
    devices: ClassVar[tuple[Device, ...]] = ("cpu",)

    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when usable here; otherwise why not (missing package, no GPU, ...)."""

    @classmethod
    def availability_on(cls, device: Device, options: dict[str, Any] | None = None) -> str | None:
        """None when a session with these load options can compute on `device` here; otherwise why not.
        Runtimes that use a GPU override this to check that the GPU is really usable (never a silent CPU run)."""
        if device not in cls.devices:
            return f"{cls.name} computes on the CPU only: it is measured on CPU targets, not on a {device} target"
        return cls.availability()

    @classmethod
    @abstractmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        """Load the artifact (file or directory) with `threads` intra-op threads; `options["device"]` says
        where it computes ("cpu" when absent)."""

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {}


_OUT_OF_MEMORY = ("out of memory", "failed to allocate memory", "resourceexhausted", "oom when allocating",
                  "cudaerrormemoryallocation", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")


def out_of_device_memory(error: BaseException) -> bool:
    """Whether a runtime's error says the device ran out of memory (ONNX Runtime's arena, CUDA, cuDNN,
    TensorFlow's ResourceExhausted): a batch this large does not fit, nor will a larger one."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(marker in text for marker in _OUT_OF_MEMORY)
