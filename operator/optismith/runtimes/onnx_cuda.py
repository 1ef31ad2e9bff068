"""ONNX Runtime on a GPU: the CUDA execution provider (TensorRT's when asked for and installed), never a
silent CPU run, with device-resident inputs and outputs (IO binding) and CUDA graphs for fixed shapes.

Runtime options (catalog `runtime_options`, strings):
    ep                  "cuda" (default) or "tensorrt" (TensorRT first, CUDA for what it does not take)
    io                  "host" (default: numpy in, numpy out, as a user calls `session.run`) or "device"
                        (inputs staged in GPU memory once, outputs left there: `Session.bind`)
    cuda.<key>          a CUDA provider option, verbatim: use_tf32, prefer_nhwc, fuse_conv_bias,
                        cudnn_conv_algo_search, enable_cuda_graph (needs io=device), ...
    tensorrt.<key>      a TensorRT provider option, verbatim (trt_fp16_enable, ...)

Never on the CPU: `session.disable_cpu_ep_fallback` makes session creation fail when any node would be
assigned to the CPU EP, ONNX Runtime's own retry on the CPU after an EP error is turned off, and the
registered providers are checked after creation. ONNX Runtime's CUDA EP turns TF32 on by default
(use_tf32=1): its "fp32" is not IEEE fp32 unless a variant says use_tf32=0.
"""

from __future__ import annotations

import ctypes
import gc
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optismith.runtimes.base import IOSpec
from optismith.runtimes.onnx_session import _ONNX_TO_NUMPY, OnnxSession, session_options

CUDA_EP = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"
TENSORRT_LIBRARY = "libnvinfer.so.10"
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
_CPU_FALLBACK_REFUSED = "fallback to CPU EP has been explicitly disabled"
# Provider options reported in the benchmark record (their effective values, defaults included).
REPORTED_CUDA_OPTIONS = ("use_tf32", "prefer_nhwc", "fuse_conv_bias", "cudnn_conv_algo_search",
                         "enable_cuda_graph", "cudnn_conv_use_max_workspace", "do_copy_in_default_stream")


class GpuPlacementError(RuntimeError):
    """The session would not compute (entirely) on the GPU: a failed variant, never a CPU measurement."""


@dataclass(frozen=True)
class Placement:
    """Where device buffers live and which provider must hold every node. The product always uses CUDA;
    tests and the GPU bench's CPU dry run stand the CPU EP in to exercise the IO-binding code paths."""

    device_type: str = "cuda"
    provider: str = CUDA_EP
    strict: bool = True  # refuse CPU-EP nodes (meaningless when the stand-in is the CPU EP itself)


PLACEMENT = Placement()


def provider_options(options: dict[str, Any], prefix: str) -> dict[str, str]:
    return {key[len(prefix):]: str(value) for key, value in options.items() if key.startswith(prefix)}


def wants_cuda_graph(options: dict[str, Any]) -> bool:
    return str(options.get("cuda.enable_cuda_graph", "0")) == "1"


def tensorrt_missing() -> str | None:
    """Why the TensorRT EP cannot load here (ONNX Runtime would fall back to CUDA without saying so)."""
    try:
        ctypes.CDLL(TENSORRT_LIBRARY)
    except OSError as error:
        return (f"the TensorRT execution provider needs {TENSORRT_LIBRARY} (TensorRT 10), which this node does "
                f"not have ({error}); the CUDA variants run instead")
    return None


def gpu_unavailable(options: dict[str, Any]) -> str | None:
    """None when a session with these options can be created on the GPU here; otherwise why not."""
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    if CUDA_EP not in available:
        return (f"onnxruntime {ort.__version__} has no {CUDA_EP} (it has {available}): GPU targets need "
                "onnxruntime-gpu (pip install 'optismith[onnx-gpu]')")
    if str(options.get("ep", "cuda")) == "tensorrt":
        if TENSORRT_EP not in available:
            return f"onnxruntime {ort.__version__} was built without {TENSORRT_EP}"
        return tensorrt_missing()
    return None


def providers_for(options: dict[str, Any], *, cuda_graph: bool | None = None) -> list[tuple[str, dict[str, str]]]:
    cuda = provider_options(options, "cuda.")
    if cuda_graph is not None:
        cuda["enable_cuda_graph"] = "1" if cuda_graph else "0"
    if str(options.get("ep", "cuda")) == "tensorrt":
        return [(TENSORRT_EP, provider_options(options, "tensorrt.")), (CUDA_EP, cuda)]
    return [(CUDA_EP, cuda)]


def create_session(artifact: Path, threads: int, providers: list[tuple[str, dict[str, str]]],
                   placement: Placement | None = None, *, profile_dir: Path | None = None) -> Any:
    """An InferenceSession whose every node is on `providers`, or GpuPlacementError saying why not."""
    import onnxruntime as ort

    placement = placement or PLACEMENT
    options = session_options(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # CPU threads only wait here
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "placement")
    if placement.strict:
        options.add_session_config_entry(DISABLE_CPU_FALLBACK, "1")
    else:
        providers = [(placement.provider, {})]
    try:
        session = ort.InferenceSession(str(artifact), options, providers=providers, enable_fallback=0)
    except Exception as error:
        if _CPU_FALLBACK_REFUSED in str(error):
            raise GpuPlacementError(f"some nodes have no kernel on {providers[0][0]} and would run on the CPU "
                                    f"(ONNX Runtime: {str(error).strip()[:600]})") from error
        raise
    registered = list(session.get_providers())
    missing = [name for name, _ in providers if name not in registered]
    if missing:
        raise GpuPlacementError(f"{missing} did not register (the session has {registered}): it would run on "
                                "the CPU")
    return session


class _Slot:
    """One batch size's device buffers: inputs staged once, outputs preallocated, bound to a session. The
    addresses never change, which is what a captured CUDA graph replays on. Outputs are bound before the
    first run: rebinding them after it left a CUDA graph writing elsewhere (seen on an H200, ONNX Runtime
    1.31: the outputs read back were stale memory), so graphs need output shapes known up to the batch."""

    def __init__(self, session: Any, input_names: list[str], outputs: list[IOSpec], feeds: list[np.ndarray],
                 device_type: str, run_options: Any, *, cuda_graph: bool) -> None:
        import onnxruntime as ort

        self.session, self.run_options = session, run_options
        self.binding = session.io_binding()
        # Copies: on host memory an OrtValue would alias the caller's array, and `load` would overwrite it.
        self.inputs = [ort.OrtValue.ortvalue_from_numpy(np.array(feed, copy=True), device_type, 0) for feed in feeds]
        for name, value in zip(input_names, self.inputs, strict=True):
            self.binding.bind_ortvalue_input(name, value)
        batch = int(feeds[0].shape[0]) if feeds and feeds[0].ndim else 1
        shapes = [static_shape(spec.shape, batch) for spec in outputs]
        if all(shape is not None for shape in shapes):
            self.outputs = [ort.OrtValue.ortvalue_from_shape_and_type(shape, np.dtype(spec.dtype), device_type, 0)
                            for shape, spec in zip(shapes, outputs, strict=True)]
            for spec, value in zip(outputs, self.outputs, strict=True):
                self.binding.bind_ortvalue_output(spec.name, value)
            self.call()  # the regular run a CUDA graph needs before its capture
        elif cuda_graph:
            raise ValueError(f"a CUDA graph needs output shapes known up to the batch size; the model's are "
                             f"{[spec.shape for spec in outputs]}")
        else:  # a first run learns the shapes, then the outputs get buffers of their own
            for spec in outputs:
                self.binding.bind_output(spec.name, device_type, 0)
            session.run_with_iobinding(self.binding, run_options)
            self.outputs = [ort.OrtValue.ortvalue_from_shape_and_type(value.shape(), _numpy_dtype(value),
                                                                      device_type, 0)
                            for value in self.binding.get_outputs()]
            self.binding.clear_binding_outputs()
            for spec, value in zip(outputs, self.outputs, strict=True):
                self.binding.bind_ortvalue_output(spec.name, value)
        # The next run is the one a CUDA graph is captured in: done here, every later call is a replay.
        self.call()

    def load(self, feeds: list[np.ndarray]) -> None:
        for value, feed in zip(self.inputs, feeds, strict=True):
            value.update_inplace(feed)

    def call(self) -> None:
        self.session.run_with_iobinding(self.binding, self.run_options)
        self.binding.synchronize_outputs()

    def fetch(self) -> list[np.ndarray]:
        # A copy: for host-memory buffers numpy() is a view, which the next call would overwrite.
        return [np.array(value.numpy(), copy=True) for value in self.outputs]


def static_shape(shape: tuple[int | None, ...], batch: int) -> list[int] | None:
    """`shape` with its free batch dimension set to `batch`; None when another dimension is free."""
    dims = [batch if index == 0 and dim is None else dim for index, dim in enumerate(shape)]
    return None if any(dim is None for dim in dims) else [int(dim) for dim in dims if dim is not None]


def _numpy_dtype(value: Any) -> Any:
    return np.dtype(_ONNX_TO_NUMPY[value.data_type()])


class CudaSession(OnnxSession):
    """A GPU session. io=host: `run` with numpy, ONNX Runtime copying each way (the reference, as a user
    runs it). io=device: per batch size one slot of device buffers; `bind` times the model on them, `run`
    adds the copies (end to end). With a CUDA graph each batch size gets its own session, since a captured
    graph replays one shape at fixed addresses."""

    def __init__(self, artifact: Path, threads: int, options: dict[str, Any], placement: Placement | None = None):
        self.artifact, self.threads, self.options = artifact, threads, dict(options)
        self.placement = placement or PLACEMENT
        self.io = str(options.get("io", "host"))
        self.cuda_graph = wants_cuda_graph(options)
        if self.cuda_graph and self.io != "device":
            raise ValueError("cuda.enable_cuda_graph=1 needs io=device (a graph replays fixed device buffers)")
        self.providers = providers_for(options)
        super().__init__(create_session(artifact, threads, self.providers, placement))
        self._spare: Any = self._session if self.cuda_graph else None
        self._slots: dict[int, _Slot] = {}
        self._sessions: list[Any] = [self._session]

    @property
    def device_resident(self) -> bool:
        return self.io == "device"

    def _slot(self, feeds: list[np.ndarray]) -> _Slot:
        named = self.named_feeds(feeds)
        batch = int(next(iter(named.values())).shape[0]) if named else 0
        slot = self._slots.get(batch)
        if slot is None:
            session = self._session
            if self.cuda_graph:
                session = self._spare or create_session(self.artifact, self.threads, self.providers, self.placement)
                self._spare = None
                if session is not self._session:
                    self._sessions.append(session)
            slot = _Slot(session, list(named), self.outputs, list(named.values()), self.placement.device_type,
                         None, cuda_graph=self.cuda_graph)
            self._slots[batch] = slot
        slot.load(list(named.values()))
        return slot

    def bind(self, feeds: list[np.ndarray]) -> Callable[[], object]:
        if self.io != "device":
            return super().bind(feeds)
        return self._slot(feeds).call

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if self.io != "device":
            return super().run(feeds)
        slot = self._slot(feeds)
        slot.call()
        return slot.fetch()

    def execution(self) -> dict[str, Any]:
        effective = self._session.get_provider_options().get(CUDA_EP, {})
        return {"providers": list(self._session.get_providers()), "requested": [name for name, _ in self.providers],
                "io": self.io, "cuda_graph": self.cuda_graph,
                "cuda_options": {key: effective[key] for key in REPORTED_CUDA_OPTIONS if key in effective}}

    def close(self) -> None:
        self._slots.clear()
        self._sessions.clear()
        self._spare = None
        gc.collect()


def load_on_gpu(artifact: Path, threads: int, options: dict[str, Any]) -> CudaSession:
    return CudaSession(artifact, threads, options)


def node_placement(artifact: Path, options: dict[str, Any], feeds: dict[str, np.ndarray],
                   placement: Placement | None = None) -> dict[str, int]:
    """Kernels per execution provider in one profiled run (no CUDA graph): the evidence, beyond the refused
    CPU fallback, that every node computed on the GPU."""
    with tempfile.TemporaryDirectory(prefix="optismith-placement-") as scratch:
        session = create_session(artifact, 1, providers_for(options, cuda_graph=False), placement,
                                 profile_dir=Path(scratch))
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            provider = str(event.get("args", {}).get("provider", "?"))
            counts[provider] = counts.get(provider, 0) + 1
    return counts
