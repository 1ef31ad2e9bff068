"""Where results go and how the work runs: output, promotion, targets, retries, caps, model policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from optismith.spec.base import SpecModel
from optismith.spec.quantities import DnsName, Duration, ResourceQuantity, Size, Uri


class OutputSpec(SpecModel):
    uri: Uri = Field(description="Run directory root: local path, file:// or s3://bucket/prefix.")


class PromotionSpec(SpecModel):
    uri: Uri = Field(description="Stable location the winner is copied to when it passes the gates, laid out for "
                     "Triton, TF Serving and KServe (docs/gitops.md). Must not overlap model.uri or output.uri.")
    model_name: DnsName | None = Field(
        None, description="The served model's name in the Triton and TF Serving layouts; default: the resource's "
        "name (the manifest's metadata.name).")
    keep_versions: int = Field(
        3, ge=1, le=100, description="Versions kept in the Triton and TF Serving layouts (the KServe prefix always "
        "holds only the current one); older versions are deleted after a promotion.")


class Toleration(SpecModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0, le=604800, description="At most 7 days.")


class ResourcesSpec(SpecModel):
    """Kubernetes quantities, as in a pod: `cpu: 2`, `cpu: 500m`, `memory: 4Gi`."""

    requests: dict[str, ResourceQuantity] = Field(default_factory=dict, max_length=16,
                                                  description="e.g. {cpu: 2, memory: 4Gi}")
    limits: dict[str, ResourceQuantity] = Field(default_factory=dict, max_length=16,
                                                description="e.g. {cpu: 2, memory: 4Gi}")


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
    backoff: Duration = Field("10s", description="Delay before the first retry; doubles each attempt. At most 7 days.")
    stage_deadline: Duration = Field("1h", description="activeDeadlineSeconds of each stage's Job. At most 7 days.")
    unschedulable_timeout: Duration = Field(
        "5m", description="How long a Job may stay unschedulable before the run is Stalled. At most 7 days."
    )


class LimitsSpec(SpecModel):
    max_model_size: Size = Field("4Gi", description="Largest model download or archive, and largest data file "
                                 "(calibration, evaluation). At most 1Ti.")
    max_expanded_size: Size = Field("8Gi", description="Largest total size after unpacking an archive, and most "
                                    "bytes read out of a data file. At most 1Ti.")
    max_archive_entries: int = Field(100000, ge=1, le=10000000, description="Most files in an archive.")


class SecuritySpec(SpecModel):
    allow_ops: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64,
        description="Ops that touch files or the host (e.g. WriteFile) to allow anyway. Models are programs: "
        "only list ops you trust the model to use.",
    )
