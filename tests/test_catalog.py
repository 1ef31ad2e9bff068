"""The variant catalog is the single source of what a variant is: a variant added there, and nowhere else,
is valid in manifests, listed in the CRD and docs/reference.md, built by its stage's step of the plan, and
among the defaults when it says so."""

from __future__ import annotations

import pytest

from optismith import catalog
from optismith.controller.crd import build_crd, render_reference_markdown
from optismith.errors import SpecError
from optismith.pipeline import build_plan
from optismith.spec import parse_spec

FAKE = catalog.Variant(
    "onnx-int4-fake", "ONNX Runtime, int4 weights (a fake for this test).", "onnxruntime", "convert", "model.onnx",
    builder="optismith.builders.onnx:build", options={"quantization": "int4"},
)
MINIMAL = {"model": {"uri": "s3://models/m/"}, "output": {"uri": "s3://runs/"}}


def test_a_variant_added_to_the_catalog_is_everywhere() -> None:
    with pytest.raises(SpecError, match="unknown variant 'onnx-int4-fake'"):
        parse_spec({**MINIMAL, "variants": [FAKE.name]})
    with catalog.extended(FAKE):
        spec = parse_spec({**MINIMAL, "variants": [FAKE.name]})
        assert spec.variants == [catalog.BASELINE, FAKE.name]
        assert FAKE.name in parse_spec(MINIMAL).variants  # a default, as the entry says
        variants = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
            "properties"]["variants"]
        assert FAKE.name in variants["items"]["enum"] and FAKE.name in variants["default"]
        assert FAKE.name in render_reference_markdown()
        plan = build_plan(spec)
        assert plan.variants_built_by("convert") == (FAKE.name,)
        assert plan.variants_built_by("quantize") == ()
    assert FAKE.name not in catalog.names()
    assert FAKE.name not in str(build_crd())


def test_an_opt_in_variant_is_valid_but_not_a_default() -> None:
    opt_in = catalog.Variant("tflite-int4-fake", "opt-in fake", "tflite", "quantize", "model.tflite", default=False)
    with catalog.extended(opt_in):
        assert opt_in.name not in parse_spec(MINIMAL).variants
        assert build_plan(parse_spec({**MINIMAL, "variants": [opt_in.name]})).variants_built_by("quantize") == (
            opt_in.name,)


def test_names_are_unique_and_the_baseline_is_built_by_inspect() -> None:
    assert catalog.get(catalog.BASELINE).stage == "inspect"
    with pytest.raises(ValueError, match="already in the catalog"), catalog.extended(catalog.get("onnx-fp32")):
        pass
    assert catalog.building_stages() == ["inspect", "freeze", "optimize", "quantize", "convert"]


def test_the_plan_defines_the_operators_jobs_too() -> None:
    spec = parse_spec({**MINIMAL, "targets": [{"name": "cpu"}, {"name": "gpu", "kind": "gpu"}],
                       "promotion": {"uri": "s3://models/m-optimized"}})
    plan = build_plan(spec)
    assert [[job.key for job in group] for group in plan.jobs] == [
        ["prepare"], ["measure-cpu", "measure-gpu"], ["finalize"], ["promote"]]
    assert plan.jobs[1][0].stages == ("benchmark", "evaluate")
    local = build_plan(spec, targets=["cpu"])
    assert [s.label for s in local.phase("measure")] == ["benchmark@cpu", "evaluate@cpu"]
    assert "promote" not in [s.stage for s in build_plan(parse_spec(MINIMAL)).steps]
