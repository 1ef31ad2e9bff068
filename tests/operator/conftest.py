"""A cluster for operator tests: the emulated API server with our CRD, a namespace, a kubelet that runs
workers locally, and the real operator (`optismith operator`) as a subprocess."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ApiServer, Kubelet
from tests.harness.containers import Translator
from tests.harness.kopf_runner import KopfProcess
from tests.operator.cluster import CRD, FAKE_WORKER, NAMESPACE, Cluster, OptismithOperator, free_port


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
        # Workers import the code under test, wherever the tests run it from (a checkout on PYTHONPATH).
        options.setdefault("inherit_env", (*Translator.inherit_env, "PYTHONPATH"))
        return kubelet(**options)

    def start_operator(env: dict[str, str] | None = None, **options: Any) -> KopfProcess:
        merged = {
            "OPTISMITH_RECONCILE_INTERVAL": "0.5",
            "OPTISMITH_METRICS_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        options.setdefault("namespaces", [NAMESPACE])
        return kopf_process("optismith", env=merged, process_class=OptismithOperator, **options)

    yield Cluster(k8s_api, NAMESPACE, start_kubelet, start_operator)
