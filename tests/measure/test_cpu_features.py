"""Which precisions a CPU runs fast, read from /proc/cpuinfo: a fake one for each outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith import catalog
from optismith.measure import cpu_features
from optismith.measure.host import cpu_info

SAPPHIRE_RAPIDS = "fpu sse4_2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8"
SKYLAKE_SERVER = "fpu sse4_2 avx2 fma avx512f avx512bw avx512vl"  # AVX-512, but no VNNI and no bf16
ALDER_LAKE = "fpu sse4_2 avx2 fma avx_vnni"  # VNNI in AVX2 form, no bf16


def fake_cpuinfo(tmp_path: Path, flags: str, name: str = "cpuinfo") -> Path:
    path = tmp_path / name
    processor = f"processor\t: {{n}}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
    path.write_text(processor.format(n=0) + processor.format(n=1).replace(flags, "fpu"))
    return path


def test_the_first_cpus_flags_are_read(tmp_path: Path) -> None:
    flags = cpu_features.host_flags(fake_cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    assert {"avx512_bf16", "amx_int8", "avx512_vnni"} <= flags and "avx512_fp16" not in flags
    assert cpu_features.host_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("flags", "bf16", "int8"), [
    (SAPPHIRE_RAPIDS, None, None),
    (ALDER_LAKE, "bf16 needs AVX512_BF16 or AMX_BF16 to run faster than f32; this CPU has neither", None),
    (SKYLAKE_SERVER, "bf16 needs AVX512_BF16 or AMX_BF16 to run faster than f32; this CPU has neither",
     "int8 needs AVX512_VNNI or AVX_VNNI or AMX_INT8 to run faster than f32; this CPU has none of them"),
])
def test_the_catalogs_requirements_against_a_cpu(tmp_path: Path, flags: str, bf16: str | None,
                                                 int8: str | None) -> None:
    host = cpu_features.host_flags(fake_cpuinfo(tmp_path, flags))
    assert cpu_features.shortfall(catalog.get("openvino-bf16").cpu_features, host) == bf16
    assert cpu_features.shortfall(catalog.get("openvino-int8").cpu_features, host) == int8
    assert cpu_features.shortfall(catalog.get("openvino-fp32").cpu_features, host) is None  # f32 needs nothing


def test_one_flag_and_unreadable_flags_are_said_plainly() -> None:
    assert cpu_features.shortfall(["amx_tile"], frozenset({"avx2"})) == (
        "this variant needs AMX_TILE to run faster than f32; this CPU lacks it")
    reason = cpu_features.shortfall([catalog.BF16_CPU], frozenset())
    assert reason is not None and "no flags found in /proc/cpuinfo" in reason


def test_the_host_description_lists_the_fast_precisions(tmp_path: Path) -> None:
    assert cpu_info(fake_cpuinfo(tmp_path, SAPPHIRE_RAPIDS))["fast_precisions"] == ["bf16", "int8"]
    described = cpu_info(fake_cpuinfo(tmp_path, ALDER_LAKE))
    assert described["fast_precisions"] == ["int8"] and described["model"] == "Test CPU"
    assert "avx_vnni" in described["flags"]
    assert cpu_info(fake_cpuinfo(tmp_path, SKYLAKE_SERVER))["fast_precisions"] == []
