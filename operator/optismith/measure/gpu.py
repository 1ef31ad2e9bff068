"""What a GPU benchmark ran on, and how much GPU memory it used, without importing a framework.

Numbers measured on a GPU mean little without the GPU's name, the driver, the CUDA and cuDNN versions
and the clocks it ran at: `describe_gpus` asks `nvidia-smi` (it ships with the driver on every NVIDIA
node) and the CUDA runtime and cuDNN libraries the process can load. `GpuMemory` reads the memory in use
through NVML (libnvidia-ml, also part of the driver) with ctypes, so the worker needs no NVIDIA Python
package. Everything here degrades to "unknown" (None, or an "error" entry) rather than failing: a
description that could not be read must not fail a benchmark.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# nvidia-smi --query-gpu fields, in the order asked for; clocks in MHz, memory in MiB, power in W.
SMI_FIELDS = (
    "index", "name", "uuid", "driver_version", "memory.total", "memory.used", "clocks.sm", "clocks.max.sm",
    "clocks.mem", "clocks.max.mem", "power.draw", "power.limit", "pstate", "compute_mode", "temperature.gpu",
    "persistence_mode",
)
_CUDA_VERSION = re.compile(r"CUDA Version:\s*([0-9.]+)")
# Libraries tried, newest first: the CUDA runtime and cuDNN the runtimes load (CUDA 13 and 12, cuDNN 9 and 8).
CUDART_LIBRARIES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so")
CUDNN_LIBRARIES = ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so")
NVML_LIBRARIES = ("libnvidia-ml.so.1", "libnvidia-ml.so")


def gpu_visible() -> bool:
    """An NVIDIA device is visible to this process (without importing a framework to ask)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidia0").exists()


def _run(command: list[str], timeout: float = 20.0) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def parse_smi_query(text: str, fields: tuple[str, ...] = SMI_FIELDS) -> list[dict[str, Any]]:
    """Rows of `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`; numbers as numbers, "[N/A]"
    and "[Not Supported]" as None."""
    gpus = []
    for line in text.strip().splitlines():
        values = [value.strip() for value in line.split(",")]
        if len(values) != len(fields):
            continue
        row: dict[str, Any] = {}
        for key, value in zip(fields, values, strict=True):
            if value.startswith("[") or value in ("N/A", ""):
                row[key] = None
                continue
            try:
                row[key] = int(value) if re.fullmatch(r"-?\d+", value) else float(value)
            except ValueError:
                row[key] = value
            if key in ("name", "uuid", "driver_version", "pstate", "compute_mode", "persistence_mode"):
                row[key] = value
        gpus.append(row)
    return gpus


def _library_version(names: tuple[str, ...], function: str, by_reference: bool) -> tuple[str, int] | None:
    """(library, version) from the first of `names` that loads: `function` returns it (cuDNN) or writes it
    into its int* argument (the CUDA runtime)."""
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            call = getattr(library, function)
            if by_reference:
                value = ctypes.c_int(0)
                if call(ctypes.byref(value)) != 0:
                    continue
                return name, int(value.value)
            call.restype = ctypes.c_size_t
            return name, int(call())
        except (AttributeError, OSError):
            continue
    return None


def _dotted(version: int, major_scale: int, minor_scale: int) -> str:
    """12080 -> 12.8 (CUDA: 1000, 10); 91900 -> 9.19.0 (cuDNN 9: 10000, 100)."""
    major, rest = divmod(version, major_scale)
    minor, patch = divmod(rest, minor_scale)
    return f"{major}.{minor}" if minor_scale == 10 else f"{major}.{minor}.{patch}"


def library_versions() -> dict[str, str]:
    """The CUDA runtime's and cuDNN's versions, as the libraries this process loads report them."""
    found: dict[str, str] = {}
    cudart = _library_version(CUDART_LIBRARIES, "cudaRuntimeGetVersion", by_reference=True)
    if cudart is not None:
        found["cuda_runtime"] = _dotted(cudart[1], 1000, 10)
        found["cuda_runtime_library"] = cudart[0]
    cudnn = _library_version(CUDNN_LIBRARIES, "cudnnGetVersion", by_reference=False)
    if cudnn is not None:
        scale = (10000, 100) if cudnn[1] >= 90000 else (1000, 100)
        found["cudnn"] = _dotted(cudnn[1], *scale)
        found["cudnn_library"] = cudnn[0]
    return found


def describe_gpus() -> dict[str, Any]:
    """The visible GPUs (name, driver, memory, clocks now and at most, power, P-state), the driver's CUDA
    version, and the CUDA runtime and cuDNN this process loads; {"error": why} when there is no nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {"error": "nvidia-smi not found on PATH", **library_versions()}
    described: dict[str, Any] = {}
    try:
        described["gpus"] = parse_smi_query(_run([smi, f"--query-gpu={','.join(SMI_FIELDS)}",
                                                  "--format=csv,noheader,nounits"]))
        match = _CUDA_VERSION.search(_run([smi]))
        described["cuda_driver"] = match.group(1) if match else None
    except (OSError, subprocess.SubprocessError) as error:
        described["error"] = f"nvidia-smi failed: {type(error).__name__}: {error}"[:500]
    described.update(library_versions())
    return described


def gpu_names(description: dict[str, Any] | None = None) -> list[str]:
    """'NVIDIA H200 (GPU-uuid)' per visible GPU: what a Job reports it ran on."""
    gpus = (description if description is not None else describe_gpus()).get("gpus", [])
    return [f"{gpu.get('name')} ({gpu.get('uuid')})" if gpu.get("uuid") else str(gpu.get("name")) for gpu in gpus]


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class GpuMemory:
    """Device memory in use, summed over the visible GPUs (NVML counts every process and the driver's
    own reservation, so a variant's figure is the growth over what was in use before it was loaded)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[ctypes.c_void_p] = []
        self.problem: str | None = None
        for name in NVML_LIBRARIES:
            try:
                self._nvml = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self._nvml is None:
            self.problem = "NVML (libnvidia-ml.so.1) is not loadable"
            return
        if self._nvml.nvmlInit_v2() != 0:
            self.problem, self._nvml = "nvmlInit failed", None
            return
        count = ctypes.c_uint(0)
        self._nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if self._nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) == 0:
                self._handles.append(handle)

    @property
    def available(self) -> bool:
        return self._nvml is not None and bool(self._handles)

    def used_bytes(self) -> int | None:
        if not self.available:
            return None
        total = 0
        for handle in self._handles:
            info = _NvmlMemory()
            if self._nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(info)) != 0:
                return None
            total += int(info.used)
        return total


class PeakTracker:
    """The largest growth of GPU memory in use over a starting point, from samples taken when asked."""

    def __init__(self, memory: GpuMemory | None) -> None:
        self.memory = memory
        self.start = memory.used_bytes() if memory is not None else None
        self.peak = self.start

    def sample(self) -> None:
        if self.memory is None or self.peak is None:
            return
        used = self.memory.used_bytes()
        if used is not None:
            self.peak = max(self.peak, used)

    @property
    def growth_bytes(self) -> int | None:
        if self.start is None or self.peak is None:
            return None
        return max(0, self.peak - self.start)
