"""The ModelOptimization resource: the spec's top level, its identity, and reading manifests.

Validation errors name the field (camelCase, as in the manifest) and say how to fix it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from optismith import API_GROUP, API_VERSION, KIND, catalog
from optismith.errors import SpecError
from optismith.spec.base import SpecModel, cross_field
from optismith.spec.execution import ExecutionSpec, LimitsSpec, OutputSpec, PromotionSpec, SecuritySpec, TargetSpec
from optismith.spec.measurement import BenchmarkSpec, OptimizeSpec, SelectionSpec
from optismith.spec.sources import CalibrationSpec, EvaluationSpec, ModelSource, StorageSpec
from optismith.spec.variants import VariantName, default_variants

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"
BASELINE_VARIANT = catalog.BASELINE
# A run directory's last component (runs/layout.py: gen-<generation>, run-<UTC timestamp>).
RUN_DIRECTORY_PATTERN = r"(^|/)(gen-[0-9]+|run-[0-9]{8}-[0-9]{6})(/|$)"
# CEL for "this URI as a directory": one trailing '/' (CEL in the API server has no string trimming).
_DIR = "({0}.endsWith('/') ? {0} : {0} + '/')"


def uris_overlap(first: str, second: str) -> bool:
    """One URI is the other or lies below it, compared as directories ('s3://b/m' and 's3://b/m/x' overlap,
    's3://b/m' and 's3://b/m2' do not). Exactly what the CEL twin checks: no path resolution."""
    a, b = (uri if uri.endswith("/") else uri + "/" for uri in (first, second))
    return a.startswith(b) or b.startswith(a)


class ModelOptimizationSpec(SpecModel):
    model: ModelSource = Field(description="The trained model to optimize.")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="S3 settings for s3:// URIs.")
    optimize: OptimizeSpec = Field(default_factory=OptimizeSpec, description="Graph optimization (Grappler).")
    variants: list[VariantName] = Field(
        default_factory=default_variants, min_length=1, max_length=32,
        description="Variants to build and measure; the baseline tf-savedmodel is always included.",
    )
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec, description="Data for int8 calibration.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="Data for the accuracy gate.")
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec, description="How variants are measured.")
    selection: SelectionSpec = Field(default_factory=SelectionSpec, description="How the winner is chosen.")
    output: OutputSpec = Field(description="Where run directories are written.")
    promotion: PromotionSpec | None = Field(
        None, description="Copy a winner that passes the gates to a stable location (for GitOps)."
    )
    targets: list[TargetSpec] = Field(
        default_factory=lambda: [TargetSpec(name="cpu")], min_length=1, max_length=8,
        description="Where variants are benchmarked; prepare always runs on CPU.",
    )
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec, description="Retries and deadlines of Jobs.")
    limits: LimitsSpec = Field(default_factory=LimitsSpec, description="Caps on downloads and archives.")
    security: SecuritySpec = Field(default_factory=SecuritySpec, description="What an untrusted model may do.")

    @field_validator("variants", mode="after")
    @classmethod
    def _baseline_first(cls, variants: list[str]) -> list[str]:
        """Every speedup is measured against the baseline, so it is always built (a default, not a rule)."""
        return variants if BASELINE_VARIANT in variants else [BASELINE_VARIANT, *variants]

    @cross_field(
        cel="self.targets.all(t, self.targets.exists_one(u, u.name == t.name))",
        message="targets[].name must be unique", field_path=".targets",
    )
    def _unique_target_names(self) -> ModelOptimizationSpec:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets[].name must be unique, got {names}")
        return self

    @cross_field(
        cel="!has(self.promotion) || [self.model.uri, self.output.uri].all(u, !("
            f"{_DIR.format('self.promotion.uri')}.startsWith({_DIR.format('u')}) || "
            f"{_DIR.format('u')}.startsWith({_DIR.format('self.promotion.uri')})))",
        message="promotion.uri must not overlap model.uri or output.uri (neither may contain the other)",
        field_path=".promotion.uri",
    )
    def _promotion_apart(self) -> ModelOptimizationSpec:
        if self.promotion is not None:
            for name, uri in (("model.uri", self.model.uri), ("output.uri", self.output.uri)):
                if uris_overlap(self.promotion.uri, uri):
                    raise ValueError(f"promotion.uri {self.promotion.uri!r} overlaps {name} {uri!r}: promoting "
                                     "there would overwrite the source or the run directories; pick a prefix "
                                     "outside both")
        return self

    @cross_field(
        cel=f"!has(self.promotion) || !self.promotion.uri.matches('{RUN_DIRECTORY_PATTERN}')",
        message="promotion.uri must not name a run directory (a gen-<N> or run-<timestamp> path component)",
        field_path=".promotion.uri",
    )
    def _promotion_not_in_a_run(self) -> ModelOptimizationSpec:
        if self.promotion is not None and re.search(RUN_DIRECTORY_PATTERN, self.promotion.uri):
            raise ValueError(f"promotion.uri {self.promotion.uri!r} names a run directory (a gen-<N> or "
                             "run-<timestamp> path component): promoting into another run would break its "
                             "manifest; pick a prefix outside every output location")
        return self

    @cross_field(
        cel="self.selection.batchSize in self.benchmark.batchSizes",
        message="selection.batchSize must be one of benchmark.batchSizes", field_path=".selection.batchSize",
    )
    def _selection_batch_is_measured(self) -> ModelOptimizationSpec:
        if self.selection.batch_size not in self.benchmark.batch_sizes:
            raise ValueError(
                f"selection.batchSize {self.selection.batch_size} must be one of benchmark.batchSizes "
                f"{self.benchmark.batch_sizes}: add it there or pick one of those"
            )
        return self


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None


class ModelOptimization(SpecModel):
    api_version: Literal["optismith.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ModelOptimization"]
    metadata: ObjectMeta
    spec: ModelOptimizationSpec
    status: dict[str, Any] | None = None



def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = _field_path(loc)
        if prefix:
            where = f"{prefix}.{where}" if where else prefix
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; fields are camelCase)"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{where or '<root>'}: {message}")
    return "; ".join(lines)


def parse_manifest(document: Any, source: str = "<manifest>") -> ModelOptimization:
    if not isinstance(document, dict):
        raise SpecError(f"the manifest is not a mapping but {type(document).__name__}", where=source,
                        fix=f"write a YAML mapping with apiVersion: {API_VERSION_FULL} and kind: {KIND}")
    if document.get("apiVersion") != API_VERSION_FULL or document.get("kind") != KIND:
        raise SpecError(
            f"expected apiVersion {API_VERSION_FULL} and kind {KIND}, got "
            f"{document.get('apiVersion')!r} / {document.get('kind')!r}",
            where=source, fix="set apiVersion and kind at the top of the manifest",
        )
    try:
        return ModelOptimization.model_validate(document)
    except ValidationError as error:
        raise SpecError(format_validation_error(error), where=source,
                        fix="correct the named fields (see docs/reference.md)") from None


def parse_spec(spec: Any, source: str = "spec") -> ModelOptimizationSpec:
    """Validate just a spec (as the operator receives it), naming fields from `spec.`."""
    try:
        return ModelOptimizationSpec.model_validate(spec)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, prefix="spec"), where=source,
                        fix="correct the named fields (kubectl explain mo.spec)") from None


def load_manifest(path: str | Path) -> ModelOptimization:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read the manifest: {error.strerror}", where=str(path),
                        fix="pass an existing file with -f") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise SpecError(f"the manifest is not valid YAML: {error}", where=str(path),
                        fix="check indentation and quoting") from None
    if len(documents) != 1:
        raise SpecError(f"expected exactly one YAML document, found {len(documents)}", where=str(path),
                        fix="put one ModelOptimization per file")
    manifest = parse_manifest(documents[0], source=str(path))
    return resolve_relative_uris(manifest, path.parent)


def resolve_relative_uris(manifest: ModelOptimization, base: Path) -> ModelOptimization:
    """Local paths in a manifest are relative to the manifest's directory, like kustomize's."""

    def fix(uri: str | None) -> str | None:
        if uri is None or uri.startswith(("s3://", "file://", "/")):
            return uri
        return str((base / uri).resolve())

    spec = manifest.spec
    spec.model.uri = fix(spec.model.uri) or spec.model.uri
    spec.output.uri = fix(spec.output.uri) or spec.output.uri
    spec.calibration.uri = fix(spec.calibration.uri)
    spec.evaluation.uri = fix(spec.evaluation.uri)
    if spec.promotion is not None:
        spec.promotion.uri = fix(spec.promotion.uri) or spec.promotion.uri
    return manifest
