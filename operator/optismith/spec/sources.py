"""Where the model and its data come from, and how to reach S3 for them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from optismith.spec.base import SpecModel, cross_field
from optismith.spec.quantities import DnsName, Percent, ShortDuration, Uri

ModelFormat = Literal["auto", "savedmodel", "keras", "frozen-graph", "checkpoint"]
DType = Literal["float32", "float16", "int32", "int64", "uint8", "int8", "bool"]
SIGNATURELESS_FORMATS = ("frozen-graph", "checkpoint")


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

    @cross_field(
        cel="!(self.format in ['frozen-graph', 'checkpoint']) || (size(self.inputs) > 0 && size(self.outputs) > 0)",
        message="frozen-graph and checkpoint models carry no signature: set model.inputs (name, dtype, shape) "
        "and model.outputs (tensor names)",
    )
    def _signatureless_formats_need_io(self) -> ModelSource:
        if self.format in SIGNATURELESS_FORMATS and (not self.inputs or not self.outputs):
            raise ValueError(
                f"format {self.format!r} carries no signature: set model.inputs (name, dtype, shape) "
                "and model.outputs (tensor names)"
            )
        return self


CalibrationMethod = Literal["minmax", "entropy", "percentile"]


class MixedPrecisionSpec(SpecModel):
    """The budget of the *-int8-mixed variants: how long they may search for the layers to keep in float."""

    max_attempts: int = Field(
        6, ge=1, le=32, description="Rebuilds after the full-int8 one; each keeps twice as many of the most "
        "sensitive layers in float as the last (1, 2, 4, ...).",
    )
    max_float_fraction: Percent = Field(
        "50%", description="At most this fraction of the quantized layers stays in float; 100% or more sets "
        "no limit. When the next attempt would exceed it, the search stops.",
    )
    time_budget: ShortDuration = Field(
        "10m", description="Wall time per variant for the search; no attempt starts after it. At most 1h.",
    )


class CalibrationSpec(SpecModel):
    uri: Uri | None = Field(None, description=".npz with an 'x' array (or one array per input) for int8.")
    samples: int = Field(200, ge=1, le=100000, description="How many calibration samples to use.")
    synthetic: bool = Field(
        False, description="Allow random calibration data when no uri is given (reported as synthetic). "
        "Without either, variants that need calibration are skipped with that reason.",
    )
    method: CalibrationMethod = Field(
        "minmax", description="How activation ranges are computed from the calibration data for ONNX static "
        "int8 (ONNX Runtime's CalibrationMethod: MinMax, Entropy, Percentile). TFLite's converter offers no "
        "choice (it calibrates min-max), so TFLite variants ignore it and record that.",
    )
    mixed_precision: MixedPrecisionSpec = Field(
        default_factory=MixedPrecisionSpec, description="Budget of the *-int8-mixed variants' search for the "
        "layers to keep in float when full int8 fails the accuracy gate.",
    )


class EvaluationSpec(SpecModel):
    uri: Uri | None = Field(
        None, description=".npz with 'x' and optional 'y' (labels). Without labels, variants are compared "
        "to the source model's outputs."
    )
    metric: Literal["top1"] = Field("top1", description="Accuracy metric.")
    samples: int = Field(2000, ge=1, le=1000000, description="At most this many samples are evaluated.")
