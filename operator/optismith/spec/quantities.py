"""Quantities in the spec: percentages, durations, sizes and decimals as strings with units.

Kubernetes API conventions forbid floats in specs, so thresholds are strings ("1%", "0.5ms", "50Mi")
validated by patterns here and parsed into numbers by the accessors.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(us|ms|s|m|h)$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(|k|M|G|T|Ki|Mi|Gi|Ti)$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
URI_PATTERN = r"^(s3://[^/]+(/.*)?|file://.+|[^:]+)$"

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}

Percent = Annotated[str, Field(pattern=PERCENT_PATTERN, json_schema_extra={"example": "1%"})]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, json_schema_extra={"example": "0.5ms"})]
Size = Annotated[str, Field(pattern=SIZE_PATTERN, json_schema_extra={"example": "50Mi"})]
Decimal = Annotated[str, Field(pattern=DECIMAL_PATTERN, json_schema_extra={"example": "1e-3"})]
DnsName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Uri = Annotated[str, Field(min_length=1, max_length=2048, pattern=URI_PATTERN)]


def percent(value: str) -> float:
    """'1.5%' -> 0.015"""
    return float(value.rstrip("%")) / 100.0


def seconds(value: str) -> float:
    """'0.5ms' -> 0.0005"""
    match = re.match(r"^([0-9.]+)([a-z]+)$", value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def size_bytes(value: str) -> int:
    """'50Mi' -> 52428800"""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
