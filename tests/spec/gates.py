"""The two gates a spec meets, side by side: the CRD schema as the API server applies it (defaulting,
pruning, structural validation, CEL rules, and strict field validation -- what `kubectl apply` asks for by
default -- for unknown fields), and the spec model the CLI, the operator and the workers run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from optismith.errors import SpecError
from optismith.spec import parse_spec
from tests.harness.schema import admit

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "modeloptimizations.optismith.io.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
CEL_CAUSE = 'Invalid value: "object": '  # how the API server words a failed x-kubernetes-validations rule


def unknown_fields(original: Any, pruned: Any, path: str = "spec") -> list[str]:
    """What pruning dropped: with fieldValidation=Strict (kubectl's default) the server rejects these."""
    if isinstance(original, dict) and isinstance(pruned, dict):
        dropped = [f"{path}.{k}" for k in original if k not in pruned]
        return dropped + [
            x for k in original if k in pruned for x in unknown_fields(original[k], pruned[k], f"{path}.{k}")
        ]
    if isinstance(original, list) and isinstance(pruned, list):
        return [
            x
            for i, (a, b) in enumerate(zip(original, pruned, strict=False))
            for x in unknown_fields(a, b, f"{path}[{i}]")
        ]
    return []


def crd_gate(spec: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The stored spec and the API server's complaints (path, message), like `kubectl apply` gets them."""
    body = {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "gate", "namespace": "ml"},
        "spec": copy.deepcopy(spec),
    }
    stored, causes = admit(copy.deepcopy(body), SCHEMA)
    unknown = [(path, "Unknown field") for path in unknown_fields(body["spec"], stored.get("spec"))]
    return stored.get("spec") or {}, causes + unknown


def operator_gate(spec: Any) -> str | None:
    """None when the spec model accepts it, else the message the operator puts into the Stalled condition."""
    try:
        parse_spec(spec)
    except SpecError as error:
        return error.message
    return None
