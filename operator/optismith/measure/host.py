"""What a benchmark ran on: numbers mean little without the CPU, its vector extensions, the cores the
process may use, memory, and the thread settings inherited from the environment."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from optismith.measure.cpu_features import ACCELERATES, parse_flags

# Extensions that decide which kernels runtimes pick (oneDNN, XNNPACK, MLAS) on x86 and Arm.
INTERESTING_CPU_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16",
)
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "OMP_PROC_BIND", "KMP_AFFINITY", "KMP_BLOCKTIME",
    "ORT_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """Model name and the interesting flags of the first CPU listed."""
    model = platform.processor() or platform.machine()
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
    flags = parse_flags(text)
    return {
        "model": model,
        "architecture": platform.machine(),
        "flags": [flag for flag in INTERESTING_CPU_FLAGS if flag in flags],
        "fast_precisions": sorted({ACCELERATES[flag] for flag in flags if flag in ACCELERATES}),
    }


def cpu_quota(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs the cgroup may use (a container limit), or None when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def total_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_bytes() -> int:
    """Resident set size now, from /proc/self/statm (ru_maxrss only ever grows, so it cannot show what
    one model adds once an earlier one has been released in the same process)."""
    try:
        fields = Path("/proc/self/statm").read_text(encoding="utf-8").split()
        return int(fields[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def affinity_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe_environment(library_versions: dict[str, str]) -> dict[str, Any]:
    versions = {"numpy": np.__version__, **library_versions}
    return {
        "cpu": cpu_info(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": affinity_count(),
        "cgroup_cpu_quota": cpu_quota(),
        "total_memory_bytes": total_memory_bytes(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": dict(sorted(versions.items())),
        "thread_env": {name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ},
    }


def default_threads(cores: int | None = None) -> list[int]:
    """1..cores, as powers of two plus `cores` itself: a full sweep on a 64-core node would take
    64 times as long and thread scaling is smooth enough between those points."""
    if cores is None:
        quota = cpu_quota()
        cores = affinity_count()
        if quota is not None:
            cores = max(1, min(cores, math.ceil(quota)))
    counts = {cores}
    power = 1
    while power < cores:
        counts.add(power)
        power *= 2
    return sorted(counts)
