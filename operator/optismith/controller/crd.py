"""The CustomResourceDefinition, generated from the pydantic spec model (the single source of truth).

Pydantic's JSON Schema is turned into a Kubernetes *structural* schema: references inlined, nullable
instead of anyOf-null, no additionalProperties:false (Kubernetes prunes unknown fields instead), and a few
CEL rules that catch cross-field mistakes at `kubectl apply` time.
"""

from __future__ import annotations

from typing import Any

import yaml

from optismith import API_GROUP, API_VERSION, KIND
from optismith.spec import ModelOptimizationSpec

PLURAL = "modeloptimizations"
SINGULAR = "modeloptimization"
SHORT_NAMES = ["mo"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"

_DROP_KEYS = {"title", "additionalProperties_false"}

# Cross-field rules the API server enforces before the operator ever sees the object.
SPEC_RULES = [
    {
        "rule": "!has(self.selection) || !has(self.selection.batchSize) || !has(self.benchmark) "
        "|| !has(self.benchmark.batchSizes) || self.selection.batchSize in self.benchmark.batchSizes",
        "message": "selection.batchSize must be one of benchmark.batchSizes",
        "fieldPath": ".selection.batchSize",
    },
    {
        "rule": "!has(self.targets) || self.targets.all(t, self.targets.exists_one(u, u.name == t.name))",
        "message": "targets[].name must be unique",
        "fieldPath": ".targets",
    },
]
MODEL_RULES = [
    {
        "rule": "!has(self.format) || !(self.format in ['frozen-graph', 'checkpoint']) || "
        "(has(self.inputs) && size(self.inputs) > 0 && has(self.outputs) && size(self.outputs) > 0)",
        "message": "frozen-graph and checkpoint models carry no signature: set model.inputs and model.outputs",
    },
]


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
    raw = ModelOptimizationSpec.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    schema["x-kubernetes-validations"] = SPEC_RULES
    schema["properties"]["model"]["x-kubernetes-validations"] = MODEL_RULES
    schema["description"] = "What to optimize, how to measure it, and which variant may win."
    return schema


STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Observed state, written by the operator.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "observedGeneration": {"type": "integer", "format": "int64"},
        "phase": {"type": "string"},
        "conditions": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "required": ["type", "status", "lastTransitionTime", "reason", "message"],
                "properties": {
                    "type": {"type": "string", "maxLength": 316},
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string", "maxLength": 1024},
                    "message": {"type": "string", "maxLength": 32768},
                },
            },
        },
    },
}

PRINTER_COLUMNS = [
    {"name": "Succeeded", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Succeeded")].status'},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Succeeded")].reason'},
    {"name": "Winner", "type": "string", "jsonPath": ".status.winner.variant"},
    {"name": "Speedup", "type": "string", "jsonPath": ".status.winner.speedup"},
    {"name": "P99", "type": "string", "jsonPath": ".status.winner.latencyP99"},
    {"name": "AccDrop", "type": "string", "jsonPath": ".status.winner.accuracyDrop"},
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


def render_crd_yaml() -> str:
    header = "# Generated from optismith.spec by `make crd` (optismith crd). Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


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
    lines += [f"- {rule['message']}" for rule in [*SPEC_RULES, *MODEL_RULES]]
    return "\n".join(lines) + "\n"
