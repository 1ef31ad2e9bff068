"""Which reduced precisions this CPU runs fast, from the flags in /proc/cpuinfo.

A catalog entry names the flags its precision needs (`Variant.cpu_features`): each requirement is one
flag or alternatives joined by "|" ("avx512_bf16|amx_bf16": either will do). Without them oneDNN still
runs bf16 and int8, but by converting to and from f32 around every op: slower than f32, so measuring such
a variant only costs time. The check runs where the variant is measured (runs/eligibility.py), since the
node that builds a variant need not be the one that serves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# What each flag accelerates, for the skip reason ("bf16 needs AVX512_BF16 or AMX_BF16 ...").
ACCELERATES = {
    "avx512_bf16": "bf16", "amx_bf16": "bf16",
    "avx512_vnni": "int8", "avx_vnni": "int8", "amx_int8": "int8",
}


def parse_flags(text: str) -> frozenset[str]:
    """The flags of the first CPU listed in a /proc/cpuinfo text (x86 "flags", Arm "Features")."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def host_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """This machine's CPU flags; empty when /proc/cpuinfo cannot be read (then every requirement is unmet,
    and the reason says the flags were not found)."""
    try:
        return parse_flags((cpuinfo or CPUINFO).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def shortfall(requirements: Iterable[str], flags: frozenset[str]) -> str | None:
    """None when `flags` meet every requirement, else why not, naming the flags and what they are for."""
    for requirement in requirements:
        alternatives = [flag.strip().lower() for flag in requirement.split("|") if flag.strip()]
        if not alternatives or any(flag in flags for flag in alternatives):
            continue
        purposes = {ACCELERATES.get(flag, "") for flag in alternatives}
        purpose = purposes.pop() if len(purposes) == 1 and "" not in purposes else "this variant"
        names = " or ".join(flag.upper() for flag in alternatives)
        lacks = {1: "lacks it", 2: "has neither"}.get(len(alternatives), "has none of them")
        where = "this CPU" if flags else "this CPU (no flags found in /proc/cpuinfo)"
        return f"{purpose} needs {names} to run faster than f32; {where} {lacks}"
    return None
