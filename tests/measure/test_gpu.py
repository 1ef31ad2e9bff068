"""The GPU description and memory figures, without a GPU: nvidia-smi's output parsed, a fake nvidia-smi on
PATH, NVML missing, the peak tracker's arithmetic."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from optismith.measure import gpu
from optismith.measure.gpu import PeakTracker, describe_gpus, gpu_names, parse_smi_query

H200 = ("0, NVIDIA H200, GPU-6f1d, 580.159.04, 143771, 4, 345, 1980, 3201, 3201, 81.00, 700.00, P0, Default, "
        "40, Enabled")


def test_parse_smi_query_types_each_field() -> None:
    (row,) = parse_smi_query(H200 + "\n")
    assert row["name"] == "NVIDIA H200" and row["driver_version"] == "580.159.04"
    assert row["memory.total"] == 143771 and row["clocks.max.sm"] == 1980 and row["power.draw"] == 81.0
    assert row["pstate"] == "P0" and row["compute_mode"] == "Default"
    (unsupported,) = parse_smi_query(H200.replace("81.00", "[N/A]"))
    assert unsupported["power.draw"] is None
    assert parse_smi_query("garbage, line") == []


def test_without_nvidia_smi_the_description_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    described = describe_gpus()
    assert described["error"] == "nvidia-smi not found on PATH"
    assert gpu_names(described) == []


def test_a_fake_nvidia_smi_is_read_for_gpus_and_the_driver_cuda_version(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\nif [ -n \"$1\" ]; then echo '" + H200 + "'; else "
                      "echo '| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |'; fi\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    described = describe_gpus()
    assert described["cuda_driver"] == "13.0"
    assert described["gpus"][0]["name"] == "NVIDIA H200"
    assert gpu_names(described) == ["NVIDIA H200 (GPU-6f1d)"]


def test_versions_are_written_the_way_the_libraries_number_them() -> None:
    assert gpu._dotted(13000, 1000, 10) == "13.0" and gpu._dotted(12080, 1000, 10) == "12.8"
    assert gpu._dotted(91900, 10000, 100) == "9.19.0" and gpu._dotted(8907, 1000, 100) == "8.9.7"


def test_gpu_memory_without_nvml_is_unknown_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "NVML_LIBRARIES", ("libnvidia-ml-not-here.so.1",))
    memory = gpu.GpuMemory()
    assert not memory.available and memory.used_bytes() is None and "NVML" in (memory.problem or "")
    tracker = PeakTracker(memory)
    tracker.sample()
    assert tracker.growth_bytes is None


def test_peak_tracker_reports_growth_over_the_start() -> None:
    class Memory:
        values = iter([1000, 1500, 1200, 4000])

        def used_bytes(self) -> int:
            return next(self.values)

    tracker = PeakTracker(Memory())  # type: ignore[arg-type]
    for _ in range(3):
        tracker.sample()
    assert tracker.growth_bytes == 3000


def test_visible_devices_hidden_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu.gpu_visible()
