"""What every bench script shares: where results go, what machine and load they ran under, and tables.

Scripts run from the repository root as `python -m bench.<name>` (bench/ is a package, so they import each
other, the test harness and examples as `bench.*`, `tests.*`, `examples.*`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
PACKAGES = ("optismith", "tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime", "onnx", "tf2onnx", "openvino",
            "numpy", "kopf", "kubernetes", "aiohttp", "kmock", "pydantic")
# Vector and matrix extensions that decide which kernels oneDNN, XNNPACK, MLAS and OpenVINO pick.
CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def command_line() -> str:
    """The command as a user would type it from the repository root (`python -m bench.<script>`)."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(ROOT):
        shown = ["-m", ".".join(script.relative_to(ROOT).with_suffix("").parts)]
    else:
        shown = [str(script)]
    python = Path(sys.executable)
    interpreter = python.relative_to(ROOT) if python.is_relative_to(ROOT) else Path(python.name)
    return shlex.join([str(interpreter), *shown, *sys.argv[1:]])


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def machine() -> dict[str, Any]:
    """CPU model, extensions, cores, memory and software: what a number means depends on all of them."""
    lscpu = _lscpu()
    flags = set(lscpu.get("Flags", "").split())
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "cpu_model": lscpu.get("Model name", platform.processor()),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "threads_per_core": lscpu.get("Thread(s) per core"),
        "l2_cache": lscpu.get("L2 cache"),
        "l3_cache": lscpu.get("L3 cache"),
        "hypervisor": lscpu.get("Hypervisor vendor"),
        "memory_gib": round(memory_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
    }


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds() -> float:
    """CPU time of this process and its waited-for children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class LoadMonitor:
    """How busy the machine was while we measured, and how much of that was not us. On a shared host
    the absolute numbers move with the neighbours' load; this says how much load there was."""

    interval_s: float = 5.0
    samples: list[float] = field(default_factory=list)  # 1-minute load averages
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _start: tuple[float, int, int, float] = (0.0, 0, 0, 0.0)
    extra_own_cpu_s: float = 0.0  # CPU of processes we started but did not wait for (added by the caller)

    def __enter__(self) -> LoadMonitor:
        busy, total = _cpu_jiffies()
        self._start = (time.monotonic(), busy, total, _own_cpu_seconds())
        self._thread = threading.Thread(target=self._sample, name="load-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 1)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval_s):
                return

    def summary(self) -> dict[str, Any]:
        started, busy0, total0, own0 = self._start
        busy1, total1 = _cpu_jiffies()
        elapsed = max(time.monotonic() - started, 1e-9)
        cores = os.cpu_count() or 1
        busy_cores = cores * (busy1 - busy0) / max(total1 - total0, 1)
        own_cores = (_own_cpu_seconds() - own0 + self.extra_own_cpu_s) / elapsed
        return {
            "seconds": round(elapsed, 1),
            "loadavg_1m_mean": round(sum(self.samples) / len(self.samples), 2) if self.samples else None,
            "loadavg_1m_max": round(max(self.samples), 2) if self.samples else None,
            "busy_cores_mean": round(busy_cores, 2),
            "other_processes_cores_mean": round(max(0.0, busy_cores - own_cores), 2),
        }


def proc_status_kib(pid: int, key: str) -> int | None:
    """A field of /proc/<pid>/status in KiB, e.g. VmHWM (peak RSS) or VmRSS; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers are expected preformatted as strings."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{suffix}"


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json",
                        help=f"where to write the JSON results (default: bench/results/{name}.json)")


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def csv_words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
