"""The ModelOptimization spec: the single source of truth for the CLI, the Jobs and the CRD schema.

Kubernetes API conventions forbid floats in specs, so thresholds are strings with units
("1%", "0.5ms", "50Mi") validated by patterns here and parsed into numbers by the accessors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from optismith import API_GROUP, API_VERSION, KIND
from optismith.errors import SpecError

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"

# --- quantities --------------------------------------------------------------------------------

PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(us|ms|s|m|h)$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(|k|M|G|T|Ki|Mi|Gi|Ti)$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
URI_PATTERN = r"^(s3://[^/]+(/.*)?|file://.+|[^:]+)$"

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


Percent = Annotated[str, Field(pattern=PERCENT_PATTERN, json_schema_extra={"example": "1%"})]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, json_schema_extra={"example": "0.5ms"})]
Size = Annotated[str, Field(pattern=SIZE_PATTERN, json_schema_extra={"example": "50Mi"})]
Decimal = Annotated[str, Field(pattern=DECIMAL_PATTERN, json_schema_extra={"example": "1e-3"})]
DnsName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Uri = Annotated[str, Field(min_length=1, max_length=2048, pattern=URI_PATTERN)]


def percent(value: str) -> float:
    """'1.5%' -> 0.015"""
    return float(value.rstrip("%")) / 100.0


def seconds(value: str) -> float:
    """'0.5ms' -> 0.0005"""
    match = re.match(r"^([0-9.]+)([a-z]+)$", value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def size_bytes(value: str) -> int:
    """'50Mi' -> 52428800"""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


# --- building blocks ---------------------------------------------------------------------------


class SpecModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors, not silently dropped.

    Strict types, like the CRD schema: "200" or true is not an integer, 1 is not a boolean. Lax coercion
    would let `optismith run` accept a manifest that `kubectl apply` rejects.
    """

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, validate_default=True, strict=True
    )


ModelFormat = Literal["auto", "savedmodel", "keras", "frozen-graph", "checkpoint"]
DType = Literal["float32", "float16", "int32", "int64", "uint8", "int8", "bool"]

VariantName = Literal[
    "tf-savedmodel",
    "tf-frozen",
    "tf-grappler",
    "tf-xla",
    "tflite-fp32",
    "tflite-fp16",
    "tflite-dynamic-int8",
    "tflite-int8",
    "tflite-int8-io",
    "onnx-fp32",
    "onnx-int8",
    "openvino-fp32",
    "tftrt-fp16",
    "tftrt-int8",
]
BASELINE_VARIANT: VariantName = "tf-savedmodel"
# XLA JIT is opt-in: measured 5-7x slower than the baseline on MobileNetV2 on CPU.
DEFAULT_VARIANTS: list[VariantName] = [
    "tf-savedmodel", "tf-frozen", "tf-grappler",
    "tflite-fp32", "tflite-fp16", "tflite-dynamic-int8", "tflite-int8", "tflite-int8-io",
    "onnx-fp32", "onnx-int8", "openvino-fp32", "tftrt-fp16", "tftrt-int8",
]

GrapplerPass = Literal[
    "constfold", "arithmetic", "remapper", "layout", "dependency", "debug_stripper", "pruning",
    "shape", "loop", "function", "common_subgraph_elimination",
]
DEFAULT_PASSES: list[GrapplerPass] = [
    "pruning", "function", "constfold", "shape", "arithmetic", "layout", "remapper",
    "loop", "dependency", "debug_stripper", "common_subgraph_elimination",
]


class TensorSpec(SpecModel):
    """An input of a graph that carries no signature (frozen GraphDef, TF1 checkpoint)."""

    name: str = Field(min_length=1, max_length=256, description="Tensor name, e.g. 'input' or 'input:0'.")
    dtype: DType = Field("float32", description="Element type.")
    shape: list[Annotated[int, Field(ge=-1)]] = Field(
        min_length=0, max_length=8, description="Shape; -1 for a dynamic dimension (usually the batch)."
    )


class SecretKeyRef(SpecModel):
    name: DnsName = Field(description="Name of a Secret in the resource's namespace.")
    access_key_id_key: str = Field("AWS_ACCESS_KEY_ID", description="Key holding the access key id.")
    secret_access_key_key: str = Field("AWS_SECRET_ACCESS_KEY", description="Key holding the secret key.")


class StorageSpec(SpecModel):
    """How to reach S3-compatible storage (AWS, MinIO, SeaweedFS). Unset values come from the environment."""

    endpoint: str | None = Field(None, max_length=512, description="S3 endpoint URL, e.g. http://minio:9000.")
    region: str | None = Field(None, max_length=64, description="S3 region.")
    path_style: bool = Field(False, description="Use path-style addressing (MinIO, SeaweedFS).")
    credentials_secret: SecretKeyRef | None = Field(
        None, description="Secret with S3 credentials; omit to use workload identity (IRSA) or the environment."
    )


class ModelSource(SpecModel):
    uri: Uri = Field(
        description="Where the model is: a local path, file://, or s3://bucket/key (a prefix, one file, "
        "or a .tar.gz/.zip archive)."
    )
    format: ModelFormat = Field("auto", description="Model format; 'auto' detects it from the files.")
    signature: str = Field("serving_default", max_length=128, description="Serving signature to optimize.")
    inputs: list[TensorSpec] = Field(
        default_factory=list, max_length=16,
        description="Inputs of a frozen graph or checkpoint (required for those formats).",
    )
    outputs: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16,
        description="Output tensor names of a frozen graph or checkpoint (required for those formats).",
    )

    @model_validator(mode="after")
    def _graph_formats_need_io(self) -> ModelSource:
        if self.format in ("frozen-graph", "checkpoint") and (not self.inputs or not self.outputs):
            raise ValueError(
                f"format {self.format!r} carries no signature: set model.inputs (name, dtype, shape) "
                "and model.outputs (tensor names)"
            )
        return self


class OptimizeSpec(SpecModel):
    passes: list[GrapplerPass] = Field(
        default_factory=lambda: list(DEFAULT_PASSES), description="Grappler passes to run, in order."
    )
    max_abs_error: Decimal = Field(
        "1e-3", description="Largest output difference (relative to the output's range) a graph "
        "transformation may introduce before it is rejected."
    )


class CalibrationSpec(SpecModel):
    uri: Uri | None = Field(None, description=".npz with an 'x' array (or one array per input) for int8.")
    samples: int = Field(200, ge=1, le=100000, description="How many calibration samples to use.")
    synthetic: bool = Field(
        False, description="Allow random calibration data when no uri is given (reported as synthetic)."
    )


class EvaluationSpec(SpecModel):
    uri: Uri | None = Field(
        None, description=".npz with 'x' and optional 'y' (labels). Without labels, variants are compared "
        "to the source model's outputs."
    )
    metric: Literal["top1"] = Field("top1", description="Accuracy metric.")
    samples: int = Field(2000, ge=1, le=1000000, description="At most this many samples are evaluated.")


Scenario = Literal["singleStream", "offline", "server"]
DEFAULT_SCENARIOS: tuple[Scenario, ...] = ("singleStream", "offline", "server")


class BenchmarkSpec(SpecModel):
    batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [1, 8], min_length=1, max_length=8, description="Batch sizes to sweep."
    )
    threads: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=list, max_length=8, description="Thread counts to sweep; empty means 1..cores."
    )
    warmup_runs: int = Field(5, ge=0, le=1000, description="Inferences discarded before measuring.")
    min_rounds: int = Field(15, ge=3, le=100000, description="Paired rounds before stability is judged.")
    time_budget: Duration = Field("3s", description="Time per variant and configuration before giving up "
                                  "on stability (the result is then flagged unstable).")
    stability: Percent = Field("5%", description="Stop when the 95% confidence interval of the median is "
                               "within this fraction of it.")
    scenarios: list[Scenario] = Field(
        default_factory=lambda: list(DEFAULT_SCENARIOS), description="Load scenarios."
    )
    server_qps: int | None = Field(
        None, ge=1, le=1000000, description="Poisson arrival rate for the server scenario; default: half "
        "of the variant's measured single-stream throughput."
    )
    server_duration: Duration = Field("2s", description="Length of the server scenario.")
    finalists: int = Field(
        4, ge=0, le=16, description="At each batch size, this many of the fastest variants (those within 2x "
        "of the fastest) are measured again head to head, in interleaved rounds with the baseline, and "
        "ranked on that; 0 or 1 turns this off."
    )


Objective = Literal["latencyP50", "latencyP99", "throughput", "size"]


class ConstraintsSpec(SpecModel):
    """Gates a variant must pass to be selected."""

    max_accuracy_drop: Percent = Field("1%", description="Largest accuracy (or agreement) drop vs the source.")
    max_latency: Duration | None = Field(None, description="Largest p99 latency at the objective's batch size.")
    max_size: Size | None = Field(None, description="Largest artifact size.")


class SelectionSpec(SpecModel):
    objective: Objective = Field("latencyP50", description="What the winner minimizes (throughput: maximizes).")
    batch_size: int = Field(1, ge=1, le=4096, description="Batch size the objective is measured at.")
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec, description="Gates a winner must pass.")


class OutputSpec(SpecModel):
    uri: Uri = Field(description="Run directory root: local path, file:// or s3://bucket/prefix.")


class PromotionSpec(SpecModel):
    uri: Uri = Field(description="Stable location the winner is copied to when it passes the gates.")


class Toleration(SpecModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class ResourcesSpec(SpecModel):
    requests: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: '2', memory: 4Gi}")
    limits: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: '2', memory: 4Gi}")


class TargetSpec(SpecModel):
    name: DnsName = Field(description="Target name, used in Job names and metrics labels.")
    kind: Literal["cpu", "gpu"] = Field("cpu", description="Hardware kind.")
    image: str | None = Field(None, max_length=512, description="Worker image; default from the operator.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Worker requests and limits.")
    gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu count (gpu targets default to 1).")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)


class ExecutionSpec(SpecModel):
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts per stage before the run fails.")
    backoff: Duration = Field("10s", description="Delay before the first retry; doubles each attempt.")
    stage_deadline: Duration = Field("1h", description="activeDeadlineSeconds of each stage's Job.")
    unschedulable_timeout: Duration = Field(
        "5m", description="How long a Job may stay unschedulable before the run is Stalled."
    )


class LimitsSpec(SpecModel):
    max_model_size: Size = Field("4Gi", description="Largest model download or archive.")
    max_expanded_size: Size = Field("8Gi", description="Largest total size after unpacking an archive.")
    max_archive_entries: int = Field(100000, ge=1, le=10000000, description="Most files in an archive.")


class SecuritySpec(SpecModel):
    allow_ops: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64,
        description="Ops that touch files or the host (e.g. WriteFile) to allow anyway. Models are programs: "
        "only list ops you trust the model to use.",
    )


class ModelOptimizationSpec(SpecModel):
    model: ModelSource = Field(description="The trained model to optimize.")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="S3 settings for s3:// URIs.")
    optimize: OptimizeSpec = Field(default_factory=OptimizeSpec, description="Graph optimization (Grappler).")
    variants: list[VariantName] = Field(
        default_factory=lambda: list(DEFAULT_VARIANTS), min_length=1, max_length=32,
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

    @model_validator(mode="after")
    def _consistent(self) -> ModelOptimizationSpec:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        if BASELINE_VARIANT not in self.variants:
            self.variants.insert(0, BASELINE_VARIANT)
        if self.selection.batch_size not in self.benchmark.batch_sizes:
            raise ValueError(
                f"selection.batchSize {self.selection.batch_size} is not among benchmark.batchSizes "
                f"{self.benchmark.batch_sizes}: add it there or pick one of those"
            )
        needs_calibration = {"tflite-int8", "tflite-int8-io", "onnx-int8", "tftrt-int8"} & set(self.variants)
        if needs_calibration and not self.calibration.uri and not self.calibration.synthetic:
            raise ValueError(
                f"variants {sorted(needs_calibration)} need calibration data: set calibration.uri to an .npz, "
                "set calibration.synthetic: true, or drop those variants"
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


# --- loading -----------------------------------------------------------------------------------


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
