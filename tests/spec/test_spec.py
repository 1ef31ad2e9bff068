"""The spec model: defaults, quantities, and errors that name the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from optismith.errors import SpecError
from optismith.spec import load_manifest, parse_manifest, parse_spec, percent, seconds, size_bytes

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = {
    "apiVersion": "optismith.io/v1alpha1",
    "kind": "ModelOptimization",
    "metadata": {"name": "m"},
    "spec": {"model": {"uri": "s3://models/m"}, "output": {"uri": "s3://runs"}, "calibration": {"synthetic": True}},
}


def manifest(**spec_overrides: object) -> dict:
    document = copy.deepcopy(MINIMAL)
    document["spec"].update(spec_overrides)
    return document


def test_minimal_manifest_gets_defaults() -> None:
    parsed = parse_manifest(manifest())
    spec = parsed.spec
    assert spec.variants[0] == "tf-savedmodel"
    assert "tf-xla" not in spec.variants  # opt-in only
    assert spec.benchmark.batch_sizes == [1, 8]
    assert spec.targets[0].name == "cpu" and spec.targets[0].kind == "cpu"
    assert percent(spec.selection.constraints.max_accuracy_drop) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("text", "parser", "expected"),
    [
        ("1%", percent, 0.01),
        ("0.5%", percent, 0.005),
        ("0.5ms", seconds, 0.0005),
        ("2s", seconds, 2.0),
        ("1m", seconds, 60.0),
        ("50Mi", size_bytes, 50 * 2**20),
        ("1G", size_bytes, 10**9),
        ("100", size_bytes, 100),
    ],
)
def test_quantities_parse(text: str, parser, expected: float) -> None:
    assert parser(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("spec_overrides", "field", "hint"),
    [
        ({"benchmark": {"batchSizez": [1]}}, "spec.benchmark.batchSizez", "unknown field"),
        ({"benchmark": {"batchSizes": [0]}}, "spec.benchmark.batchSizes[0]", "greater than or equal"),
        (
            {"selection": {"constraints": {"maxAccuracyDrop": "0.01"}}},
            "spec.selection.constraints.maxAccuracyDrop",
            "pattern",
        ),
        (
            {"selection": {"constraints": {"maxAccuracyDrop": 0.01}}},
            "spec.selection.constraints.maxAccuracyDrop",
            "string",
        ),
        ({"benchmark": {"timeBudget": "3 seconds"}}, "spec.benchmark.timeBudget", "pattern"),
        ({"variants": ["tflite-int4"]}, "spec.variants[0]", "tflite-int8"),
        ({"model": {"uri": "m.pb", "format": "frozen-graph"}}, "spec.model", "model.inputs"),
        ({"selection": {"batchSize": 4}}, "spec", "benchmark.batchSizes"),
        ({"targets": [{"name": "a"}, {"name": "a"}]}, "spec", "unique"),
        ({"targets": [{"name": "Not_DNS"}]}, "spec.targets[0].name", "pattern"),
    ],
)
def test_bad_values_name_the_field(spec_overrides: dict, field: str, hint: str) -> None:
    document = manifest(**spec_overrides)
    with pytest.raises(SpecError) as caught:
        parse_manifest(document)
    message = str(caught.value)
    assert field in message, message
    assert hint in message, message
    assert "Fix:" in message


def test_a_manifest_needs_only_a_model_and_an_output() -> None:
    """int8 variants are among the defaults although they need calibration data: without it they are skipped
    with that reason when the run builds them, so the shortest manifest is valid everywhere."""
    document = manifest()
    del document["spec"]["calibration"]
    spec = parse_manifest(document).spec
    assert "tflite-int8" in spec.variants and spec.calibration.uri is None and not spec.calibration.synthetic
    document["spec"]["variants"] = ["tflite-fp32"]
    assert parse_manifest(document).spec.variants == ["tf-savedmodel", "tflite-fp32"]


def test_missing_required_fields() -> None:
    with pytest.raises(SpecError, match=r"spec\.output: required field is missing"):
        parse_spec({"model": {"uri": "x"}})


def test_wrong_kind_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="expected apiVersion"):
        parse_manifest({**MINIMAL, "kind": "Deployment"})
    with pytest.raises(SpecError, match="not a mapping"):
        parse_manifest(["a"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_manifest(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")


def test_relative_uris_resolve_against_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.yaml"
    document = manifest(model={"uri": "model"}, output={"uri": "../runs"}, evaluation={"uri": "s3://b/e.npz"})
    path.write_text(yaml.safe_dump(document))
    loaded = load_manifest(path)
    assert loaded.spec.model.uri == str(tmp_path / "sub" / "model")
    assert loaded.spec.output.uri == str(tmp_path / "runs")
    assert loaded.spec.evaluation.uri == "s3://b/e.npz"


def test_the_example_manifest_is_valid() -> None:
    loaded = load_manifest(ROOT / "examples" / "digits" / "optimization.yaml")
    assert loaded.metadata.name == "digits"
    assert loaded.spec.calibration.uri and loaded.spec.calibration.uri.endswith("calibration.npz")


def test_no_float_fields_in_the_schema() -> None:
    from optismith.spec import ModelOptimizationSpec

    text = str(ModelOptimizationSpec.model_json_schema())
    assert "'number'" not in text
