"""The operator's settings: one typed object, built once at startup from its flags and its environment.

Flags win over the environment (`--metrics-port 9100` beats OPTISMITH_METRICS_PORT), the environment over
the defaults. The Helm chart sets the environment; every variable is OPTISMITH_<FIELD NAME>, and the
structured ones (command, extra env, resources) are JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from optismith.controller.specs import WorkerDefaults

_DEFAULT_WORKER = WorkerDefaults()


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPTISMITH_", extra="ignore", frozen=True)

    max_jobs: int = Field(20, ge=1, description="Jobs running at once, across all resources.")
    max_gpu_jobs: int = Field(4, ge=0, description="GPU Jobs running at once.")
    reconcile_interval: float = Field(5.0, gt=0, description="Seconds between level-based reconciles.")
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics port; 0 turns it off.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; none: the cluster.")
    liveness: str | None = Field("http://0.0.0.0:8080/healthz", description="kopf's liveness endpoint.")
    verbose: bool = Field(False, description="Debug logging (kopf's and the operator's).")
    worker_image_cpu: str = _DEFAULT_WORKER.cpu_image
    worker_image_gpu: str = _DEFAULT_WORKER.gpu_image
    worker_command: list[str] = Field(default_factory=lambda: list(_DEFAULT_WORKER.command))
    worker_service_account: str | None = None
    worker_extra_env: dict[str, str] = Field(default_factory=dict)
    worker_resources_cpu: dict[str, dict[str, str]] = Field(default_factory=lambda: _DEFAULT_WORKER.cpu_resources)
    worker_resources_gpu: dict[str, dict[str, str]] = Field(default_factory=lambda: _DEFAULT_WORKER.gpu_resources)
    worker_image_override: bool = Field(False, description="Honour spec.targets[].image (within the allow-list).")
    worker_allowed_images: list[str] = Field(
        default_factory=list, description="fnmatch patterns of images targets may name, besides the defaults.")
    worker_s3_role_arn: str | None = Field(
        None, description="Mint per-Job S3 credentials by STS AssumeRole of this role with the Job's session policy.")
    worker_s3_credentials_seconds: int = Field(3600, ge=900, le=43200,
                                               description="Lifetime of minted credentials (STS: 15 min to 12 h).")

    @classmethod
    def from_flags(cls, **flags: Any) -> OperatorSettings:
        """Flags that were given (not None) override the environment."""
        return cls(**{name: value for name, value in flags.items() if value is not None})

    def worker(self) -> WorkerDefaults:
        return WorkerDefaults(
            cpu_image=self.worker_image_cpu, gpu_image=self.worker_image_gpu, command=tuple(self.worker_command),
            service_account=self.worker_service_account or None, extra_env=tuple(self.worker_extra_env.items()),
            cpu_resources=self.worker_resources_cpu, gpu_resources=self.worker_resources_gpu,
        )
