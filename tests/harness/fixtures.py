"""
Pytest fixtures for the Kubernetes test harness (usable via ``pytest_plugins = ["tests.harness.fixtures"]``).

* ``k8s_api`` — a started :class:`ApiServer` (emulator + kubeconfig + history + faults).
* ``kubelet`` — a factory: ``kubelet(gpus=0, command_map={...}, ...)`` starts a :class:`Kubelet`.
* ``kopf_operator`` — a factory: ``kopf_operator(registry=r, namespaces=['ns'])`` starts
  a :class:`KopfThread`.
* ``kopf_process`` — a factory: ``kopf_process('optismith.controller', namespaces=['ns'])``
  starts a :class:`KopfProcess` (kill -9 / restart capable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .kopf_runner import KopfProcess, KopfThread
from .kubelet import Kubelet
from .serving import ApiServer


@pytest.fixture
def k8s_api(tmp_path: Path) -> Iterator[ApiServer]:
    workdir = tmp_path / "k8s-api"
    workdir.mkdir()
    api = ApiServer(workdir=workdir).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubelet(k8s_api: ApiServer, tmp_path: Path) -> Iterator[Callable[..., Kubelet]]:
    started: list[Kubelet] = []

    def start(**options: Any) -> Kubelet:
        options.setdefault("workdir", tmp_path / f"kubelet-{len(started)}")
        Path(options["workdir"]).mkdir(parents=True, exist_ok=True)
        node = Kubelet(k8s_api, **options).start()
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        node.stop()


@pytest.fixture
def kopf_operator(k8s_api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., KopfThread]]:
    # In-process clients of the operator (e.g. the official client loading $KUBECONFIG on start-up)
    # must reach the emulator too, not whatever cluster the developer's machine points at.
    monkeypatch.setenv("KUBECONFIG", str(k8s_api.kubeconfig))
    started: list[KopfThread] = []

    def start(**options: Any) -> KopfThread:
        options.setdefault("kubeconfig", k8s_api.kubeconfig)
        operator = KopfThread(**options).start()
        started.append(operator)
        return operator

    yield start
    errors = []
    for operator in reversed(started):
        try:
            operator.stop()
        except BaseException as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def kopf_process(k8s_api: ApiServer, tmp_path: Path) -> Iterator[Callable[..., KopfProcess]]:
    started: list[KopfProcess] = []

    def start(target: str, *, process_class: type[KopfProcess] = KopfProcess, **options: Any) -> KopfProcess:
        options.setdefault("kubeconfig", k8s_api.kubeconfig)
        options.setdefault("log_path", tmp_path / f"kopf-{len(started)}.log")
        process = process_class(target, **options).start()
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.terminate()
