"""
CEL validation rules of CRD schemas (``x-kubernetes-validations``), evaluated as the API server does:
on the defaulted object, with ``self`` bound to the node the rule sits on, after that node passed its
OpenAPI validation; a rule that is false or fails to evaluate rejects the write with the rule's message.

Uses cel-python: the standard macros and functions (has, all, exists, exists_one, size, in, duration, ...) and
Kubernetes' quantity library (cel_library); the other Kubernetes extension libraries (strings, lists, regex)
are not available.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import celpy

from tests.harness.cel_library import FUNCTIONS

Causes = list[tuple[str, str]]


@functools.lru_cache(maxsize=512)
def _program(rule: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=FUNCTIONS)


def check_rules(value: Any, schema: Mapping[str, Any], path: str) -> Causes:
    causes: Causes = []
    for entry in schema.get("x-kubernetes-validations") or []:
        rule = entry["rule"]
        where = f"{path}{entry.get('fieldPath', '')}" if path else str(entry.get("fieldPath", "")).lstrip(".")
        try:
            result = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as error:  # CELEvalError and friends: the API server rejects the write too
            causes.append((where or path, f"Invalid value: {rule}: evaluation error: {error}"))
            continue
        if isinstance(result, Exception) or not bool(result):
            causes.append((where or path, f"Invalid value: \"object\": {entry.get('message') or rule}"))
    return causes
