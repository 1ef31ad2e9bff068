"""The InferenceService examples are valid against KServe's published API: kserve 0.21's generated OpenAPI
models (kserve.models.V1beta1InferenceService and the Kubernetes models they reference), walked strictly,
field by field: unknown fields, wrong types and missing required fields are errors (the models' own
constructors check required fields and enums). And they point at what the promotion writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.spec import parse_manifest
from tests.fixtures.schema_packages import kserve_models

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "gitops"
SERVICES = sorted(EXAMPLES.glob("inferenceservice-*.yaml"))
PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                           "object": (object,), "datetime": (str,), "date": (str,),
                                           "ResourceQuantity": (str, int, float)}


def _model_class(name: str) -> Any:
    import kubernetes.client.models as kubernetes_models

    models = kserve_models()
    found = getattr(models, name, None) or getattr(kubernetes_models, name, None)
    assert found is not None, f"no model class {name} in kserve or kubernetes"
    return found


def validate(value: Any, type_name: str, path: str, errors: list[str]) -> None:
    """Collect what is wrong with `value` as an instance of the OpenAPI type `type_name`."""
    # kserve's generator writes list[T] and dict(str, T); the kubernetes client's, List[T] and Dict[str, T].
    if (inner := re.fullmatch(r"[lL]ist\[(.+)\]", type_name)) is not None:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            validate(item, inner.group(1), f"{path}[{index}]", errors)
        return
    if (inner := re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name)) is not None:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            validate(item, inner.group(1) or inner.group(2), f"{path}.{key}", errors)
        return
    if type_name in PRIMITIVES:
        wrong_bool = type_name in ("int", "float") and isinstance(value, bool)
        if wrong_bool or not isinstance(value, PRIMITIVES[type_name]):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    model = _model_class(type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} object, got {type(value).__name__}")
        return
    attributes = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in attributes:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        validate(item, model.openapi_types[attributes[key]], f"{path}.{key}", errors)
    try:  # required fields and enums: the generated constructor checks them
        model(**{attributes[k]: v for k, v in value.items() if k in attributes})
    except (ValueError, TypeError) as error:
        errors.append(f"{path}: {error}")


def errors_of(document: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if (document.get("apiVersion"), document.get("kind")) != ("serving.kserve.io/v1beta1", "InferenceService"):
        errors.append("not a serving.kserve.io/v1beta1 InferenceService")
    validate(document, "V1beta1InferenceService", "", errors)
    return errors


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_inference_service_examples_validate_against_kserve(path: Path) -> None:
    assert errors_of(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["spec"]["predictor"]["model"].update(storageURI="s3://x"), "storageURI: unknown field"),
    (lambda d: d["spec"]["predictor"]["model"].update(modelFormat="onnx"), "expected a V1beta1ModelFormat"),
    (lambda d: d["spec"]["predictor"]["model"]["resources"]["limits"].update(cpu=["2"]), "cpu: expected str"),
    (lambda d: d["spec"]["predictor"].update(minReplicas="1"), "expected int"),
    (lambda d: d["spec"]["predictor"]["model"].update(env=[{"value": "x"}]), "name"),
])
def test_the_validator_refuses_what_kserve_would(change: Any, expected: str) -> None:
    document = yaml.safe_load(SERVICES[0].read_text())
    change(document)
    errors = errors_of(document)
    assert errors and any(expected in e for e in errors), errors


def test_examples_point_at_the_promotions_kserve_prefix() -> None:
    from optismith.runs.layout import KSERVE
    from optismith.stages.promote.serving import _KSERVE

    optimization = parse_manifest(yaml.safe_load((EXAMPLES / "optimization.yaml").read_text()))
    assert optimization.spec.promotion is not None
    formats = {kserve_format for kserve_format, _ in _KSERVE.values() if kserve_format}
    for path in SERVICES:
        model = yaml.safe_load(path.read_text())["spec"]["predictor"]["model"]
        assert model["storageUri"] == f"{optimization.spec.promotion.uri}/{KSERVE}", path.name
        assert model["modelFormat"]["name"] in formats, path.name
