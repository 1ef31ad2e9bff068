"""The committed CRD is exactly what the spec model generates, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from optismith.controller.crd import CRD_NAME, build_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "modeloptimizations.optismith.io.yaml"


def test_committed_crd_matches_the_spec_model() -> None:
    assert COMMITTED.read_text() == render_crd_yaml(), "crds/ is stale: run `make crd`"


def _walk(node: Any, path: str = "") -> list[str]:
    problems = []
    if isinstance(node, dict):
        if "$ref" in node or "anyOf" in node or "allOf" in node:
            problems.append(f"{path}: not structural ({sorted(node)})")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        if "enum" in node and "type" not in node:
            problems.append(f"{path}: enum without type")
        for key, value in node.items():
            problems += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _walk(value, f"{path}[{index}]")
    return problems


def test_schema_is_structural_and_described() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == CRD_NAME
    version = crd["spec"]["versions"][0]
    schema = version["openAPIV3Schema"] if "openAPIV3Schema" in version else version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["model", "output"]
    model = spec["properties"]["model"]
    assert "description" in model["properties"]["uri"]
    assert model["properties"]["format"]["enum"][0] == "auto"
    assert spec["properties"]["benchmark"]["properties"]["timeBudget"]["pattern"]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["mo"]
    assert spec["x-kubernetes-validations"]


def test_crd_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml()) == build_crd()


def test_reference_docs_match_the_spec_model() -> None:
    from optismith.controller.crd import render_reference_markdown

    assert (ROOT / "docs" / "reference.md").read_text() == render_reference_markdown(), "run `make crd`"
