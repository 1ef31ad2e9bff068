"""The pieces of a cluster for operator tests: what a test talks to (Cluster), the operator as its image
runs it (OptismithOperator), and a spec for the fake worker. The fixtures are in conftest.py."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness import ApiServer, Kubelet
from tests.harness.client import ApiStatusError
from tests.harness.kopf_runner import KopfProcess

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "modeloptimizations.optismith.io.yaml").read_text())
FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
NAMESPACE = "ml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OptismithOperator(KopfProcess):
    """`optismith operator`, the operator image's entrypoint (not `kopf run`), with --verbose logging."""

    def __init__(self, target: str = "optismith", **options: Any) -> None:
        super().__init__(target, **options)

    @property
    def command(self) -> list[str]:
        namespaces = [arg for ns in self.namespaces for arg in ("-n", ns)] or ["--all-namespaces"]
        return [self.python, "-m", "optismith.cli", "operator", *namespaces, "--verbose",
                f"--liveness=http://127.0.0.1:{self.port}/healthz", *self.extra_args]


@dataclass
class Cluster:
    api: ApiServer
    namespace: str
    start_kubelet: Callable[..., Kubelet]
    start_operator: Callable[..., KopfProcess]

    def resource(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.api.client.get(self.api.path("modeloptimizations", self.namespace, name))
        except ApiStatusError as error:
            if error.status == 404:
                return None
            raise
        return found

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        body = self.resource(name) or {}
        return next((c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == type_), None)

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        created: dict[str, Any] = self.api.client.create(self.api.path("modeloptimizations", self.namespace), body)
        return created

    def jobs(self, name: str | None = None) -> list[dict[str, Any]]:
        labels = f"optismith.io/name={name}" if name else "app.kubernetes.io/managed-by=optismith"
        return list(self.api.list("jobs", self.namespace, labels=labels))


def fake_spec(shared: Path, model: str = "ok", **overrides: Any) -> dict[str, Any]:
    """A spec whose worker is the fake one: paths are never opened, the model path steers it."""
    spec: dict[str, Any] = {
        "model": {"uri": f"/fake/{model}/model"},
        "output": {"uri": str(shared / "runs")},
        "calibration": {"synthetic": True},
        "execution": {"backoff": "1s", "maxAttempts": 2},
    }
    spec.update(overrides)
    return spec
