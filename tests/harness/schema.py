"""
Structural-schema handling of CRDs: defaulting, pruning of unknown fields, validation.

This matters for operators: a real server silently drops fields that the CRD schema
does not declare (e.g. kopf's ``status.kopf`` progress unless the status schema has
``x-kubernetes-preserve-unknown-fields: true``) and rejects badly typed values.
Supported keywords: type, properties, additionalProperties, items, required, enum,
default, nullable, minimum/maximum, minLength/maxLength, minItems/maxItems, pattern,
x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string, x-kubernetes-embedded-resource, and CEL
rules (x-kubernetes-validations, see cel.py). Formats are not evaluated.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from .cel import check_rules

Schema = Mapping[str, Any]
Causes = list[tuple[str, str]]
_TOP_LEVEL = ("apiVersion", "kind", "metadata")


def apply_defaults(value: Any, schema: Schema) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                if key not in props:
                    value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def prune(value: Any, schema: Schema, *, root: bool = False) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        result: dict[str, Any] = {}
        for key, item in value.items():
            if (root or embedded) and key in _TOP_LEVEL:
                # apiVersion, kind and metadata are the server's own: never pruned by a CRD schema.
                result[key] = item
            elif key in props:
                result[key] = prune(item, props[key])
            elif isinstance(extra, Mapping):
                result[key] = prune(item, extra)
            elif preserve or extra is True or ((root or embedded) and key in _TOP_LEVEL):
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [prune(item, schema["items"]) for item in value]
    return value


def _type_ok(value: Any, schema: Schema) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    expected = schema.get("type")
    if expected is None:
        return True
    checks: dict[str, bool] = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
    }
    return checks.get(expected, True)


def validate(value: Any, schema: Schema, path: str = "") -> Causes:
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else f"{type(value).__name__}"
    if value is None:
        return (
            []
            if schema.get("nullable") or not path
            else [(path, f'Invalid value: "null": {path} in body must be of type {schema.get("type")}')]
        )
    if not _type_ok(value, schema):
        return [(path, f"Invalid value: {shown}: {path} in body must be of type {schema.get('type')}: {shown}")]
    causes: Causes = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        causes.append((path, f"Unsupported value: {shown}: supported values: {allowed}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(
                (
                    path,
                    f"Invalid value: {shown}: {path} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(
                (
                    path,
                    f"Invalid value: {shown}: {path} in body should be less than or equal to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                (
                    path,
                    f"Invalid value: {shown}: {path} in body should be at least {schema['minLength']} chars long",
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append((path, f"Too long: may not be longer than {schema['maxLength']}"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append((path, f"Invalid value: {shown}: {path} in body should match '{schema['pattern']}'"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                (
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items",
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append((path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                causes += validate(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                causes.append((f"{path}.{key}" if path else key, "Required value"))
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub_path = f"{path}.{key}" if path else key
            if key in props:
                if not path and key in _TOP_LEVEL:
                    continue  # the server validates metadata on its own
                causes += validate(item, props[key], sub_path)
            elif isinstance(extra, Mapping):
                causes += validate(item, extra, sub_path)
    if not causes:
        causes += check_rules(value, schema, path)
    return causes


def admit(obj: dict[str, Any], schema: Schema | None) -> tuple[dict[str, Any], Causes]:
    """Default, prune and validate a custom resource; returns the new object and the problems."""
    if not schema:
        return obj, []
    defaulted = apply_defaults(obj, schema)
    pruned = prune(defaulted, schema, root=True)
    return pruned, validate(pruned, schema)
