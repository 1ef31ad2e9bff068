"""Kubernetes' CEL quantity library (k8s.io/apiserver/pkg/cel/library, since Kubernetes 1.28) for cel-python:
`isQuantity(s)`, `quantity(s)`, and a Quantity's `compareTo`, `isLessThan`, `isGreaterThan`, `isInteger`,
`asInteger`, `sign`. A quantity is resource.Quantity's grammar (`<number><suffix>`, suffixes Ki..Ei, n u m k M G T
P E, or an integer exponent); like the API server, a value beyond 2^63-1 is capped there."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from celpy import celtypes

_QUANTITY = re.compile(r"^([+-]?)([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_CAP = Decimal(2**63 - 1)


class Quantity:
    def __init__(self, value: Decimal) -> None:
        self.value = max(-_CAP, min(_CAP, value))


def _parse(text: str) -> Decimal | None:
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        return None
    number = Decimal(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    suffix = match.group(4) or ""
    if suffix in _BINARY:
        return number * (Decimal(1024) ** _BINARY[suffix])
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_DECIMAL[suffix])


def quantity(text: Any) -> Quantity:
    value = _parse(str(text))
    if value is None:
        raise ValueError(f"invalid quantity: {text}")
    return Quantity(value)


def is_quantity(text: Any) -> celtypes.BoolType:
    return celtypes.BoolType(_parse(str(text)) is not None)


def _compare(a: Quantity, b: Quantity) -> int:
    return (a.value > b.value) - (a.value < b.value)


FUNCTIONS = {
    "quantity": quantity,
    "isQuantity": is_quantity,
    "compareTo": lambda a, b: celtypes.IntType(_compare(a, b)),
    "isLessThan": lambda a, b: celtypes.BoolType(_compare(a, b) < 0),
    "isGreaterThan": lambda a, b: celtypes.BoolType(_compare(a, b) > 0),
    "isInteger": lambda a: celtypes.BoolType(a.value == a.value.to_integral_value()),
    "asInteger": lambda a: celtypes.IntType(int(a.value)),
    "sign": lambda a: celtypes.IntType((a.value > 0) - (a.value < 0)),
}
