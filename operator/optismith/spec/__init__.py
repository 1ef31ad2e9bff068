"""The ModelOptimization spec: the single source of truth for the CLI, the Jobs and the CRD schema.

    quantities   durations (Go), sizes and resources (Kubernetes quantities), percentages; parsers and maxima
    sources      the model, its calibration and evaluation data, S3 settings
    measurement  graph optimization, the benchmark, the selection and its gates
    execution    output, promotion, targets, retries, caps, the model's op policy
    manifest     the top level, the resource's identity, reading manifests
    base         SpecModel and cross-field rules with their CEL twins; schema: the CRD's JSON schema
"""

from optismith.spec.base import VALIDATIONS_KEY, CelRule, SpecModel, cel_rules, cross_field, validators_without_cel
from optismith.spec.execution import (
    ExecutionSpec,
    LimitsSpec,
    OutputSpec,
    PromotionSpec,
    ResourcesSpec,
    SecuritySpec,
    TargetSpec,
    Toleration,
)
from optismith.spec.manifest import (
    API_VERSION_FULL,
    BASELINE_VARIANT,
    ModelOptimization,
    ModelOptimizationSpec,
    ObjectMeta,
    format_validation_error,
    load_manifest,
    parse_manifest,
    parse_spec,
    resolve_relative_uris,
)
from optismith.spec.measurement import (
    DEFAULT_PASSES,
    DEFAULT_SCENARIOS,
    BenchmarkSpec,
    ConstraintsSpec,
    GrapplerPass,
    Objective,
    OptimizeSpec,
    Scenario,
    SelectionSpec,
)
from optismith.spec.quantities import parse_duration, parse_quantity, percent, seconds, size_bytes
from optismith.spec.schema import spec_json_schema
from optismith.spec.sources import (
    CalibrationSpec,
    DType,
    EvaluationSpec,
    ModelFormat,
    ModelSource,
    SecretKeyRef,
    StorageSpec,
    TensorSpec,
)
from optismith.spec.variants import VariantName

__all__ = [
    "API_VERSION_FULL",
    "BASELINE_VARIANT",
    "DEFAULT_PASSES",
    "DEFAULT_SCENARIOS",
    "VALIDATIONS_KEY",
    "BenchmarkSpec",
    "CalibrationSpec",
    "CelRule",
    "ConstraintsSpec",
    "DType",
    "EvaluationSpec",
    "ExecutionSpec",
    "GrapplerPass",
    "LimitsSpec",
    "ModelFormat",
    "ModelOptimization",
    "ModelOptimizationSpec",
    "ModelSource",
    "ObjectMeta",
    "Objective",
    "OptimizeSpec",
    "OutputSpec",
    "PromotionSpec",
    "ResourcesSpec",
    "Scenario",
    "SecretKeyRef",
    "SecuritySpec",
    "SelectionSpec",
    "SpecModel",
    "StorageSpec",
    "TargetSpec",
    "TensorSpec",
    "Toleration",
    "VariantName",
    "cel_rules",
    "cross_field",
    "format_validation_error",
    "load_manifest",
    "parse_duration",
    "parse_manifest",
    "parse_quantity",
    "parse_spec",
    "percent",
    "resolve_relative_uris",
    "seconds",
    "size_bytes",
    "spec_json_schema",
    "validators_without_cel",
]
