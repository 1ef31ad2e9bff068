"""A cluster for operator tests: the emulated API server with our CRD, a namespace, a kubelet that runs
workers locally, and the real operator (`kopf run -m optismith.controller.handlers`) as a subprocess."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import ApiServer, Kubelet
from harness.client import ApiStatusError
from harness.kopf_runner import KopfProcess

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "modeloptimizations.optismith.io.yaml").read_text())
FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
NAMESPACE = "ml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """Storage every pod and the operator see at the same path, like a bucket. Not under /tmp: the kubelet
    stand-in maps a pod's /tmp (an emptyDir) to a private directory, as a real node does."""
    path = Path(tempfile.mkdtemp(prefix="optismith-shared-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(
    k8s_api: ApiServer, kubelet: Callable[..., Kubelet], kopf_process: Callable[..., KopfProcess], tmp_path: Path
) -> Iterator[Cluster]:
    k8s_api.register_crd(CRD)
    k8s_api.create_namespace(NAMESPACE)

    def start_kubelet(real_worker: bool = False, **options: Any) -> Kubelet:
        worker = [f"{sys.prefix}/bin/optismith"] if real_worker else [sys.executable, str(FAKE_WORKER)]
        options.setdefault("command_map", {"optismith": worker})
        options.setdefault("termination_message_env", "OPTISMITH_TERMINATION_LOG")
        return kubelet(**options)

    def start_operator(env: dict[str, str] | None = None, **options: Any) -> KopfProcess:
        merged = {
            "OPTISMITH_RECONCILE_INTERVAL": "0.5",
            "OPTISMITH_METRICS_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        options.setdefault("namespaces", [NAMESPACE])
        return kopf_process("optismith.controller.handlers", env=merged, **options)

    yield Cluster(k8s_api, NAMESPACE, start_kubelet, start_operator)


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
