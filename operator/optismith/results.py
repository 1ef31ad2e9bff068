"""The machine-readable records a run leaves behind, and what crosses process boundaries (versioned).

Stage records and results.json live in the run directory (optismith.runs.layout); the operator, its
metrics and the terminal read them through these models, never as dicts by string keys. A worker's Job
also reports a TerminationMessage through Kubernetes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RESULTS_SCHEMA = "optismith.io/results/v1"
MANIFEST_SCHEMA = "optismith.io/manifest/v1"
PROMOTION_SCHEMA = "optismith.io/promotion/v2"
TERMINATION_SCHEMA = "optismith.io/termination/v1"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


VariantStatus = Literal["built", "rejected", "failed", "skipped"]


class TensorInfo(Record):
    name: str
    dtype: str
    shape: list[int | None]


class SourceInfo(Record):
    """What the inspect stage found."""

    format: str
    uri: str
    signature: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    op_count: int
    parameter_count: int
    flops_per_sample: int | None
    size_bytes: int


class Numerics(Record):
    """How far a variant's outputs are from the source model's on the same inputs."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    relative_error: float  # max_abs_error / output range
    cosine_similarity: float
    top1_agreement: float | None = None  # argmax agreement (optismith.models.numerics.class_agreement)
    agreement_per: Literal["sample", "element"] | None = None  # per sample (top-1) or per pixel / token


class VariantRecord(Record):
    name: str
    runtime: str  # key into optismith.runtimes registry
    status: VariantStatus
    reason: str = ""  # why rejected / failed / skipped
    artifact: str | None = None  # key relative to the run directory (file or directory)
    size_bytes: int | None = None
    built_by: str = ""  # stage name
    build_seconds: float | None = None
    op_count: int | None = None
    numerics: Numerics | None = None
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. calibration source, passes applied


class LatencyStats(Record):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    ci95_low_ms: float  # confidence interval of the median
    ci95_high_ms: float
    samples: int


class ConfigResult(Record):
    """One (variant, batch size, threads) configuration, measured in paired rounds with the baseline."""

    batch_size: int
    threads: int
    latency: LatencyStats
    baseline_latency: LatencyStats
    speedup: float  # baseline p50 / variant p50, from the same paired rounds
    throughput_per_s: float  # samples per second at this batch size
    stable: bool
    rounds: int
    server_p99_ms: float | None = None
    server_qps: float | None = None
    # For sessions whose `latency` is device-resident (inputs and outputs already in GPU memory): the same
    # call end to end, host-to-device and device-to-host copies included, timed on its own.
    host_latency: LatencyStats | None = None
    runtime_settings: dict[str, Any] = Field(default_factory=dict)  # Session.settings() as measured


class VariantBenchmark(Record):
    variant: str
    target: str
    status: VariantStatus
    reason: str = ""
    cold_start_ms: float | None = None
    peak_rss_bytes: int | None = None
    gpu_memory_peak_bytes: int | None = None  # growth of GPU memory in use while it was measured (GPU targets)
    execution: dict[str, Any] = Field(default_factory=dict)  # where it computed: providers, I/O, device options
    configs: list[ConfigResult] = Field(default_factory=list)
    best_by_batch: dict[str, ConfigResult] = Field(default_factory=dict)  # batch size -> best threads


class Accuracy(Record):
    variant: str
    target: str
    metric: str  # "top1" or "agreement"
    value: float
    drop: float  # source value - variant value (positive = worse)
    samples: int
    labelled: bool
    numerics: Numerics | None = None


class Candidate(Record):
    variant: str
    target: str
    objective_value: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    throughput_per_s: float | None
    size_bytes: int | None
    accuracy_drop: float | None
    speedup: float | None
    passed: bool
    reasons: list[str] = Field(default_factory=list)  # why it did not pass
    pareto: bool = False


class Finalist(Record):
    """A variant of the benchmark's final at the selection batch size: its median latency over the final's
    per-round medians and that median's 95% confidence interval (optismith.measure.ties)."""

    variant: str
    target: str
    p50_ms: float
    ci95_low_ms: float
    ci95_high_ms: float
    passed: bool  # whether it passed the gates


class Selection(Record):
    objective: str
    batch_size: int
    winner: str | None
    winner_target: str | None
    outcome: Literal["selected", "no-variant-passed"]
    message: str
    candidates: list[Candidate]
    # The final on the winner's target, when it ran: the passing finalists whose intervals overlap the
    # fastest passing one's are tied (`tied`, fastest first), and `tie_break` says how the winner was picked.
    finalists: list[Finalist] = Field(default_factory=list)
    extra_rounds: int = 0  # rounds the final ran past its budget because the fastest were within noise
    tie: bool = False
    tied: list[str] = Field(default_factory=list)
    tie_break: str | None = None


class Isolation(Record):
    """What confined a stage that ran the model (optismith.pipeline.sandbox): the weakest property wins,
    so a reader sees at once whether the model could reach the network, the host's files or secrets."""

    mechanism: Literal["bwrap", "unshare", "none", "in-process"]  # in-process: the credential holder ran it
    network: Literal["none", "shared"]  # none: its own network namespace, no route out
    filesystem: Literal["scratch-only", "read-only-host", "unrestricted"]
    processes: Literal["own-namespace", "shared"]  # shared: other processes' /proc/<pid>/environ may be readable
    credentials: Literal["absent", "present"]
    environment: list[str] = Field(default_factory=list)  # names of the variables the stage saw
    note: str = ""  # why it is weaker than it could be, or where it ran

    @property
    def summary(self) -> str:
        network = "no network" if self.network == "none" else "network shared"
        files = {"scratch-only": "sees only its scratch dir", "read-only-host": "host read-only",
                 "unrestricted": "host files unrestricted"}[self.filesystem]
        return (f"{self.mechanism}: {network}, {files}, credentials {self.credentials}"
                + (f" ({self.note})" if self.note else ""))


class StageRecord(Record):
    """Written by every stage when it finishes (successfully or not)."""

    schema_version: str = "optismith.io/stage/v1"
    stage: str
    target: str | None = None
    status: Literal["succeeded", "failed"]
    started_at: str
    finished_at: str
    duration_seconds: float
    peak_rss_bytes: int | None = None
    message: str = ""
    error_reason: str | None = None
    variants: list[VariantRecord] = Field(default_factory=list)
    benchmarks: list[VariantBenchmark] = Field(default_factory=list)
    accuracy: list[Accuracy] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)  # stage-specific (source info, environment, ...)
    isolation: Isolation | None = None  # how the runner confined the stage (None: it runs no model code)

    @property
    def label(self) -> str:
        return f"{self.stage}@{self.target}" if self.target else self.stage


class RunResults(Record):
    schema_version: str = RESULTS_SCHEMA
    name: str
    namespace: str | None = None
    generation: int | None = None
    spec_digest: str
    started_at: str
    finished_at: str
    environment: dict[str, Any]
    source: SourceInfo | None
    calibration: dict[str, Any] = Field(default_factory=dict)
    stages: list[StageRecord]
    variants: list[VariantRecord]
    benchmarks: list[VariantBenchmark]
    accuracy: list[Accuracy]
    selection: Selection | None
    isolation: dict[str, Isolation] = Field(default_factory=dict)  # stage label -> how it was confined


class ManifestEntry(Record):
    path: str
    sha256: str
    size_bytes: int


class RunManifest(Record):
    schema_version: str = MANIFEST_SCHEMA
    complete: bool
    created_at: str
    results_sha256: str
    files: list[ManifestEntry]


class ServingLayout(Record):
    """Where one kind of server finds the promoted model: `path` is relative to the promotion URI."""

    path: str  # Triton: --model-repository; TF Serving: --model_base_path; KServe: storageUri
    model_format: str | None = None  # KServe's modelFormat.name (tensorflow, onnx, triton)
    note: str = ""


class PromotedVersion(Record):
    version: int
    generation: int | None
    digest: str
    format: str


class PromotionManifest(Record):
    """promotion.json: the current promotion. Written last, by compare-and-swap: a reader that follows it
    finds every file it names complete, and an older generation never replaces a newer one."""

    schema_version: str = PROMOTION_SCHEMA
    version: int  # the serving version (Triton and TF Serving version directory), increasing
    variant: str
    target: str
    runtime: str  # the optismith runtime that loads `artifact` (catalog), e.g. onnxruntime, tflite
    format: str  # savedmodel, onnx, tflite, graphdef, openvino
    model_name: str  # the served model's name in the Triton and TF Serving layouts
    artifact: str  # the current version's artifact, relative to the promotion URI
    digest: str  # sha256 of the artifact (a tree digest for directories)
    servers: dict[str, ServingLayout]  # triton, tfserving, kserve: those that load this format
    retained: list[PromotedVersion]  # newest first; the first is this promotion
    version_offset: int = 0  # version = offset + generation for one resource (uid)
    # The winner's runtime settings as measured at the selection batch size (threads included), so a
    # server can load it the way it was measured.
    runtime_settings: dict[str, Any] = Field(default_factory=dict)
    source_uri: str
    run_uri: str
    name: str
    namespace: str | None
    uid: str | None = None
    generation: int | None
    promoted_at: str
    metrics: dict[str, float | None]


class PromotionOutcome(Record):
    """What the promote stage did (its record's payload)."""

    promoted: bool
    reason: str = ""  # why not, when not promoted
    uri: str | None = None
    digest: str | None = None  # "sha256:<hex>"
    variant: str | None = None
    target: str | None = None
    artifact: str | None = None  # URI of the current version's artifact
    manifest: str | None = None  # URI of promotion.json
    version: int | None = None
    runtime: str | None = None
    format: str | None = None
    storage_uri: str | None = None  # the KServe single-model prefix (only the current version)


class StageSummary(Record):
    stage: str
    status: Literal["succeeded", "failed"]
    seconds: float


class TerminationMessage(Record):
    """What a worker writes to its container's termination message (Kubernetes keeps 4096 bytes of it):
    the operator reads the outcome and the reason of a Job from it."""

    schema_version: str = TERMINATION_SCHEMA
    status: Literal["succeeded", "failed"]
    target: str | None = None
    gpus: list[str] = Field(default_factory=list)  # the GPUs the Job saw (name and UUID), on GPU targets
    stages: list[StageSummary] = Field(default_factory=list)
    reason: str | None = None
    message: str = ""

    def render(self, limit: int) -> str:
        """Compact JSON of at most `limit` bytes: the message is shortened to fit, never the JSON cut."""
        text = self.model_dump_json(exclude_defaults=False)
        message = self.message
        while len(text.encode()) > limit and message:
            message = message[: max(0, len(message) - (len(text.encode()) - limit) - 16)]
            text = self.model_copy(update={"message": message + "..." if message else ""}).model_dump_json()
        return text
