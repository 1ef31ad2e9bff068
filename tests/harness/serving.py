"""
Running the emulator for tests: a background thread with its own event loop, a free port
on 127.0.0.1, a kubeconfig file, a kubectl wrapper, and thread-safe accessors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import kopf
import yaml

from .apiserver import KubernetesApiEmulator
from .client import SyncClient, resource_path
from .faults import FaultInjector
from .history import RequestHistory
from .kopf_login import connection_info
from .selectors import FieldSelector, LabelSelector, ObjectFilter

T = TypeVar("T")


def write_kubeconfig(path: Path, server: str, *, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "harness", "cluster": {"server": server}}],
        "users": [{"name": "harness", "user": {"token": "harness-token"}}],
        "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": "harness", "namespace": namespace}}],
        "current-context": "harness",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class ApiServer:
    """
    The emulator served over HTTP from a background thread.

    Usage::

        with ApiServer(workdir=tmp_path) as api:
            api.register_crd(crd_manifest)
            api.client.create('/api/v1/namespaces', {'metadata': {'name': 'ns1'}})
            api.kubectl('get', 'mo', '-n', 'ns1')
            assert not api.history.duplicates(resource='jobs')
    """

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        **emulator_options: Any,
    ) -> None:
        self._own_tmp = tempfile.TemporaryDirectory(prefix="k8s-harness-") if workdir is None else None
        self.workdir = Path(workdir if workdir is not None else self._own_tmp.name)  # type: ignore[union-attr]
        self.host = host
        self._options = emulator_options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emulator: KubernetesApiEmulator | None = None
        self._failure: BaseException | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10) -> ApiServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sock, ready), name=f"k8s-api-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self._failure is not None:
            raise RuntimeError(f"The API server did not start: {self._failure!r}")
        write_kubeconfig(self.kubeconfig, self.url)
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        self._thread = None
        if self._own_tmp is not None:
            self._own_tmp.cleanup()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock, ready))
        except BaseException as e:  # surface it to start(); never let a thread die silently
            self._failure = e
            ready.set()
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._emulator = KubernetesApiEmulator(**self._options)
        async with self._emulator:
            server = aiohttp.web.Server(self._emulator, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1)
            await runner.setup()
            site = aiohttp.web.SockSite(runner, sock)
            await site.start()
            ready.set()
            await self._stop.wait()
            self._emulator.store.close_watchers()
            await asyncio.sleep(0.05)  # let watch streams flush their final chunk
            await runner.cleanup()

    # ------------------------------------------------------------ access

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig.yaml"

    @property
    def emulator(self) -> KubernetesApiEmulator:
        if self._emulator is None:
            raise RuntimeError("The API server is not started.")
        return self._emulator

    @property
    def history(self) -> RequestHistory:
        return self.emulator.history

    @property
    def faults(self) -> FaultInjector:
        return self.emulator.faults

    @property
    def client(self) -> SyncClient:
        return SyncClient(self.url)

    def login(self) -> kopf.ConnectionInfo:
        return connection_info(self.kubeconfig)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10, **kwargs: Any) -> T:
        """Run ``fn`` on the server's loop thread (the only safe way to touch the store directly)."""
        if self._loop is None:
            raise RuntimeError("The API server is not started.")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def runner() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:
                future.set_exception(e)

        self._loop.call_soon_threadsafe(runner)
        return future.result(timeout)

    def register_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Register (create or update) a CRD from its manifest dict, as ``kubectl apply`` would."""
        return self.call(self.emulator.register_crd, crd)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The current state of an object (a snapshot), or None. ``resource`` as in kubectl."""

        def find() -> dict[str, Any] | None:
            return self.emulator.store.find(self.emulator.spec_for(resource), namespace, name)

        return self.call(find)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        def collect() -> list[dict[str, Any]]:
            flt = ObjectFilter(namespace, None, LabelSelector.parse(labels), FieldSelector.parse(fields))
            return self.emulator.store.list_objects(self.emulator.spec_for(resource), flt).items

        return self.call(collect)

    def path(
        self,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        spec = self.call(self.emulator.spec_for, resource)
        return resource_path(spec.api_version, spec.plural, namespace if spec.namespaced else None, name, subresource)

    def create_namespace(self, name: str) -> dict[str, Any]:
        created: dict[str, Any] = self.client.create("/api/v1/namespaces", {"metadata": {"name": name}})
        return created

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (validation off: the emulator serves no OpenAPI)."""
        command: Sequence[str] = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        proc = subprocess.run(
            command,
            check=False,  # reported below with the output, which CalledProcessError would hide
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc
