"""The CustomResourceDefinition, generated from the pydantic spec model (the single source of truth).

Pydantic's JSON Schema (`optismith.spec.spec_json_schema`: every default written out, and the CEL twin of
every cross-field validator) is turned into a Kubernetes *structural* schema: references inlined, nullable
instead of anyOf-null, no additionalProperties:false (Kubernetes prunes unknown fields instead).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from optismith import API_GROUP, API_VERSION, KIND
from optismith.controller.status_schema import STATUS_SCHEMA
from optismith.spec import VALIDATIONS_KEY, ModelOptimizationSpec, spec_json_schema

PLURAL = "modeloptimizations"
SINGULAR = "modeloptimization"
SHORT_NAMES = ["mo"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"

def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) != len(node["anyOf"])
        if len(options) == 1:
            merged = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
            inlined: dict[str, Any] = _structural(merged, defs)
            if nullable:
                inlined["nullable"] = True
                if inlined.get("default") is None:
                    inlined.pop("default", None)
            return inlined
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            result["enum"] = [value]
            continue
        if key == "properties":
            result[key] = {name: _structural(prop, defs) for name, prop in value.items()}
            continue
        result[key] = _structural(value, defs)
    if "enum" in result and "type" not in result:
        result["type"] = "string"
    if result.get("type") == "object" and "properties" not in result and "additionalProperties" not in result:
        result["x-kubernetes-preserve-unknown-fields"] = True
    if "default" in result and result["default"] is None:
        del result["default"]
    return result


def spec_schema() -> dict[str, Any]:
    raw = spec_json_schema(ModelOptimizationSpec)
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    schema["description"] = "What to optimize, how to measure it, and which variant may win."
    return schema


def _condition(type_: str, field: str = "status") -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field}'


# `kubectl get mo`: the verdict; `-o wide` (priority 1) adds what was compared and where the run is.
PRINTER_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": _condition("Ready"),
     "description": "A usable winner exists (and was promoted, when spec.promotion is set)."},
    {"name": "Reason", "type": "string", "jsonPath": _condition("Ready", "reason"),
     "description": "Why Ready is what it is."},
    {"name": "Winner", "type": "string", "jsonPath": ".status.winner.variant", "description": "The selected variant."},
    {"name": "Speedup", "type": "string", "jsonPath": ".status.winner.speedup", "description": "Over the source."},
    {"name": "P99", "type": "string", "jsonPath": ".status.winner.latencyP99", "description": "Winner's p99."},
    {"name": "AccDrop", "type": "string", "jsonPath": ".status.winner.accuracyDrop",
     "description": "Winner's accuracy drop."},
    {"name": "Objective", "type": "string", "jsonPath": ".spec.selection.objective", "priority": 1,
     "description": "What the selection optimizes."},
    {"name": "Target", "type": "string", "jsonPath": ".status.winner.target", "priority": 1,
     "description": "Where the winner was measured."},
    {"name": "Version", "type": "integer", "jsonPath": ".status.promoted.version", "priority": 1,
     "description": "Promoted serving version."},
    {"name": "Stalled", "type": "string", "jsonPath": _condition("Stalled"), "priority": 1,
     "description": "The run ended without a usable winner."},
    {"name": "Run", "type": "string", "jsonPath": ".status.runUri", "priority": 1,
     "description": "The run directory."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "optismith"}},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": SINGULAR,
                "shortNames": SHORT_NAMES, "categories": ["optismith", "ml"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "ModelOptimization turns a trained TensorFlow model into the fastest "
                            "inference artifact that still meets its accuracy bar.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": STATUS_SCHEMA,
                            },
                        }
                    },
                }
            ],
        },
    }


# Strings a YAML 1.2 reader (kubectl, Go) takes for numbers although PyYAML (YAML 1.1) writes them bare:
# `default: 1e-3` would reach the API server as a float where the schema says string.
_NUMBER_LIKE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^0x[0-9a-fA-F]+$|^0o[0-7]+$")


class _CrdDumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _NUMBER_LIKE.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CrdDumper.add_representer(str, _string)


def render_crd_yaml() -> str:
    header = "# Generated from optismith.spec by `make crd` (optismith crd). Do not edit by hand.\n"
    return header + yaml.dump(build_crd(), Dumper=_CrdDumper, sort_keys=False, width=100)


def _reference_rows(schema: dict[str, Any], path: str, rows: list[tuple[str, str, str, str]]) -> None:
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        field_path = f"{path}.{name}"
        kind = prop.get("type", "object")
        if kind == "array":
            items = prop.get("items", {})
            kind = f"[]{items.get('type', 'object')}"
        rules = []
        if "enum" in prop:
            rules.append("one of " + ", ".join(f"`{v}`" for v in prop["enum"]))
        if "pattern" in prop:
            rules.append(f"pattern `{prop['pattern']}`")
        for key, label in (("minimum", "≥"), ("maximum", "≤"), ("maxItems", "max items"), ("maxLength", "max length")):
            if key in prop:
                rules.append(f"{label} {prop[key]}")
        default = prop.get("default")
        default_text = "" if default is None else f"`{default}`"
        description = (prop.get("description") or "").replace("\n", " ")
        if name in required:
            description = f"**Required.** {description}"
        if rules:
            description += f" ({'; '.join(rules)})"
        rows.append((field_path, kind, default_text, description))
        if prop.get("type") == "object" and "properties" in prop:
            _reference_rows(prop, field_path, rows)
        if prop.get("type") == "array" and "properties" in prop.get("items", {}):
            _reference_rows(prop["items"], f"{field_path}[]", rows)


def cel_rules_in(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, str]]]:
    """(field path, rule) for every CEL rule in a structural schema, outermost first."""
    found = [(path, rule) for rule in schema.get(VALIDATIONS_KEY, [])]
    for name, prop in schema.get("properties", {}).items():
        found += cel_rules_in(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += cel_rules_in(schema["items"], f"{path}[]")
    return found


def render_reference_markdown() -> str:
    """docs/reference.md: every spec field with type, default and meaning, from the same model."""
    rows: list[tuple[str, str, str, str]] = []
    _reference_rows(spec_schema(), "spec", rows)
    lines = [
        "# ModelOptimization reference (`optismith.io/v1alpha1`)",
        "",
        "Generated from `optismith.spec` by `make crd`; `kubectl explain mo.spec` shows the same descriptions.",
        "Quantities are strings (Kubernetes API conventions forbid floats): percentages like `\"1%\"`,",
        "durations like `\"0.5ms\"`/`\"3s\"`/`\"1h\"`, sizes like `\"50Mi\"`/`\"4Gi\"`.",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    for path, kind, default, description in rows:
        escaped = description.replace("|", "\\|")
        lines.append(f"| `{path}` | {kind} | {default} | {escaped} |")
    lines += ["", "Cross-field rules checked by the API server (CEL):", ""]
    lines += [f"- `{path}`: {rule['message']}" for path, rule in cel_rules_in(spec_schema(), "spec")]
    return "\n".join(lines) + "\n"
