"""Quantities in the spec, in the forms Kubernetes users write them, each with a maximum that holds before any
work starts.

    durations   Go durations, as `kubectl`, CEL's duration() and time.ParseDuration read them: "90s", "1h30m",
                "0.5ms" (units h, m, s, ms, us, ns). Every duration field has a maximum (7 days at most).
    sizes       Kubernetes quantities (resource.Quantity; `kubernetes.utils.parse_quantity` reads the same
                value): "4Gi", "1.5Gi", "500M", "1e9", or an integer of bytes. At most 1Ti.
    resources   the same quantity forms for targets[].resources ("500m", "2", or 2), bounded by Kubernetes itself.
    percentages "1%", at most 100%; decimals "1e-3".

Kubernetes API conventions forbid floats in specs, so a number is an integer or a string; where an integer is
accepted the schema says `x-kubernetes-int-or-string` and the model stores its decimal text. Each bound is checked
twice, by the same rule: by the spec model (`optismith validate`, the CLI, the operator, every Job) and by the CRD
(a length cap and a pattern, so nothing can overflow, and a CEL rule for the maximum), so a value that passes the
pattern but overflows can never reach a deadline or a timer.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

VALIDATIONS = "x-kubernetes-validations"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$"
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]{1,2})?$"
PERCENT_PATTERN = r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)%$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
URI_PATTERN = r"^(s3://[^/]+(/.*)?|file://.+|[^:]+)$"
DURATION_MAX_LENGTH = 32  # "1h30m15s500ms" is 13: room for any sensible duration, none for overflow
QUANTITY_MAX_LENGTH = 32
SHORT_MAX_LENGTH = 32

_DURATION_UNITS = {unit: decimal.Decimal(seconds) for unit, seconds in
                   {"h": "3600", "m": "60", "s": "1", "ms": "1e-3", "us": "1e-6", "ns": "1e-9"}.items()}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|us|ns|m|s)")
_QUANTITY = re.compile(QUANTITY_PATTERN)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_duration(value: str) -> decimal.Decimal:
    """Seconds of a Go duration, exactly: '1h30m' -> 5400, '0.5ms' -> 0.0005."""
    if len(value) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN[1:-1], value):
        raise ValueError(f"not a duration: {value!r} (write it like 90s, 1h30m or 0.5ms)")
    return sum((decimal.Decimal(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(value)),
               decimal.Decimal(0))


def parse_quantity(value: str | int) -> decimal.Decimal:
    """The value of a Kubernetes quantity, exactly ('1.5Gi' -> 1610612736, '500m' -> 0.5), as
    kubernetes.utils.parse_quantity reads it; an integer is itself."""
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(value)
    text = str(value)
    match = _QUANTITY.fullmatch(text) if len(text) <= QUANTITY_MAX_LENGTH else None
    if match is None:
        raise ValueError(f"not a quantity: {value!r} (write it like 4Gi, 1.5Gi, 500M or 1e9)")
    number, suffix = decimal.Decimal(match.group(1)), match.group(3) or ""
    if suffix in _BINARY:
        return number * (decimal.Decimal(1024) ** _BINARY[suffix])
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_DECIMAL[suffix])


def seconds(value: str) -> float:
    """'0.5ms' -> 0.0005"""
    return float(parse_duration(value))


def size_bytes(value: str | int) -> int:
    """'50Mi' -> 52428800; a fraction of a byte rounds up, as Kubernetes' Quantity.Value() does."""
    return math.ceil(parse_quantity(value))


def percent(value: str) -> float:
    """'1.5%' -> 0.015"""
    return float(value.rstrip("%")) / 100.0


def _integer_as_text(value: Any) -> Any:
    """An integer where Kubernetes users write one (`cpu: 2`) is kept as its decimal text; floats stay refused."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _bounded(parse: Callable[[str], decimal.Decimal], maximum: str, message: str) -> Callable[[str], str]:
    limit = parse(maximum)

    def check(value: str) -> str:
        if parse(value) > limit:
            raise ValueError(message)
        return value

    return check


def _duration_type(maximum: str, words: str) -> Any:
    message = f"must be at most {maximum} ({words})"
    schema = {"type": "string", "pattern": DURATION_PATTERN, "maxLength": DURATION_MAX_LENGTH, "example": "1h30m",
              VALIDATIONS: [{"rule": f"duration(self) <= duration('{maximum}')", "message": message}]}
    return Annotated[str, Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH),
                     AfterValidator(_bounded(parse_duration, maximum, message)), WithJsonSchema(schema)]


def _quantity_schema(example: str, extra: dict[str, Any]) -> dict[str, Any]:
    # Structural: an int-or-string field has no type of its own (no anyOf needed either).
    return {"x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN, "maxLength": QUANTITY_MAX_LENGTH, "minimum": 0, "example": example, **extra}


SIZE_MAXIMUM = "1Ti"
SIZE_MESSAGE = f"must be at most {SIZE_MAXIMUM}"

Duration = _duration_type("168h", "7 days")  # execution: deadlines, timeouts, backoff
ShortDuration = _duration_type("1h", "1 hour")  # measurement: a variant's time budget, a scenario, a latency
Size = Annotated[
    str, BeforeValidator(_integer_as_text), Field(pattern=QUANTITY_PATTERN, max_length=QUANTITY_MAX_LENGTH),
    AfterValidator(_bounded(parse_quantity, SIZE_MAXIMUM, SIZE_MESSAGE)),
    WithJsonSchema(_quantity_schema("50Mi", {"maximum": int(parse_quantity(SIZE_MAXIMUM)), VALIDATIONS: [
        {"rule": f"quantity(string(self)).compareTo(quantity('{SIZE_MAXIMUM}')) <= 0", "message": SIZE_MESSAGE}]})),
]
ResourceQuantity = Annotated[
    str, BeforeValidator(_integer_as_text), Field(pattern=QUANTITY_PATTERN, max_length=QUANTITY_MAX_LENGTH),
    WithJsonSchema(_quantity_schema("500m", {})),
]
Percent = Annotated[str, Field(pattern=PERCENT_PATTERN, max_length=SHORT_MAX_LENGTH,
                               json_schema_extra={"example": "1%"})]
Decimal = Annotated[str, Field(pattern=DECIMAL_PATTERN, max_length=SHORT_MAX_LENGTH,
                                json_schema_extra={"example": "1e-3"})]
DnsName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Uri = Annotated[str, Field(min_length=1, max_length=2048, pattern=URI_PATTERN)]
