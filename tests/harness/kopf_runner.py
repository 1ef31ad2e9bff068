"""
Running a kopf operator against the emulator: in a background thread or as a subprocess.

* :class:`KopfThread` runs ``kopf.operator(...)`` on a fresh event loop in a thread,
  with an explicit registry — for fast, debuggable end-to-end tests.
* :class:`KopfProcess` runs ``python -m kopf run ...`` — for crash tests: it can be
  killed with SIGKILL mid-flight and restarted against the same cluster state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kopf

from .history import RequestHistory
from .kopf_login import ENV_VAR, KUBECONFIG_VAR, login_via_harness

_LOGIN_ADDED: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_harness_login(registry: kopf.OperatorRegistry) -> None:
    """
    Add the harness login to a registry (once). It reads the target from a context variable
    set per operator thread, so one registry can serve operators of different tests.
    """
    if registry not in _LOGIN_ADDED:
        kopf.on.login(registry=registry, id="harness-login")(login_via_harness)
        _LOGIN_ADDED.add(registry)


def fast_settings(settings: kopf.OperatorSettings) -> None:
    """Settings that keep tests snappy without changing the operator's semantics."""
    settings.networking.connect_timeout = 5
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = [0.1, 0.5, 1, 2]
    settings.batching.exit_timeout = 2


def wait_for_watch(history: RequestHistory, resource: str, *, user_agent: str = "kopf", timeout: float = 15) -> None:
    """Block until a client (kopf by default) has opened a watch on ``resource`` (plural)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history.watches(resource=resource, user_agent=user_agent):
            return
        time.sleep(0.02)
    raise TimeoutError(f"No {user_agent!r} watch on {resource!r} within {timeout}s.")


class KopfThread:
    """
    Usage::

        registry = kopf.OperatorRegistry()
        @kopf.on.create('example.io', 'v1', 'widgets', registry=registry)
        def created(**_): ...

        with KopfThread(registry=registry, kubeconfig=api.kubeconfig, namespaces=['ns1']) as operator:
            wait_for_watch(api.history, 'widgets')
            ...
    """

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str],
        registry: kopf.OperatorRegistry | None = None,
        namespaces: Iterable[str] = (),
        clusterwide: bool = False,
        settings: kopf.OperatorSettings | None = None,
        configure: Callable[[kopf.OperatorSettings], None] | None = fast_settings,
        liveness_endpoint: str | None = None,
        memo: Any = None,
        standalone: bool = True,
        peering_name: str | None = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.registry = registry if registry is not None else kopf.get_default_registry()
        self.namespaces = list(namespaces)
        self.clusterwide = clusterwide or not self.namespaces
        self.settings = settings if settings is not None else kopf.OperatorSettings()
        if configure is not None:
            configure(self.settings)
        self.liveness_endpoint = liveness_endpoint
        self.memo = memo
        self.standalone = standalone
        self.peering_name = peering_name
        self.exception: BaseException | None = None
        self._stop_flag = threading.Event()
        self._ready_flag = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, timeout: float = 30) -> KopfThread:
        ensure_harness_login(self.registry)
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready_flag.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The operator did not start: {self.exception!r}")
        return self

    def stop(self, *, timeout: float = 30) -> None:
        """Stop gracefully; re-raises what the operator crashed with, if anything."""
        self._stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("The operator did not stop in time.")
            self._thread = None
        if self.exception is not None:
            raise self.exception

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> KopfThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        KUBECONFIG_VAR.set(self.kubeconfig)  # copied into every task of the operator's loop
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    standalone=self.standalone,
                    peering_name=self.peering_name,
                    namespaces=self.namespaces,
                    clusterwide=self.clusterwide,
                    liveness_endpoint=self.liveness_endpoint,
                    memo=self.memo,
                    stop_flag=self._stop_flag,
                    ready_flag=self._ready_flag,
                )
            )
        except BaseException as e:  # surfaced by stop()
            self.exception = e
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


class KopfProcess:
    """
    ``python -m kopf run`` in a subprocess; kill -9 it and restart it to test crash recovery.

    ``target`` is a module name (``optismith.controller``) or a path to a ``.py`` file.
    Login uses the standard ``KUBECONFIG`` environment variable, as in production.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        kubeconfig: str | os.PathLike[str],
        namespaces: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        standalone: bool = True,
    ) -> None:
        self.target = str(target)
        self.kubeconfig = str(kubeconfig)
        self.namespaces = list(namespaces)
        self.env = dict(env or {})
        self.pythonpath = [str(p) for p in pythonpath]
        self.python = python
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path) if log_path is not None else Path(self.kubeconfig).with_name("kopf.log")
        self.cwd = cwd
        self.standalone = standalone
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def command(self) -> list[str]:
        is_file = self.target.endswith(".py") or os.sep in self.target
        command = [
            self.python,
            "-m",
            "kopf",
            "run",
            "--verbose",
            f"--liveness=http://127.0.0.1:{self.port}/healthz",
        ]
        command += ["--standalone"] if self.standalone else []
        command += [self.target] if is_file else ["-m", self.target]
        command += [arg for ns in self.namespaces for arg in ("-n", ns)] or ["--all-namespaces"]
        return command + self.extra_args

    def start(self, *, wait: bool = True, timeout: float = 30) -> KopfProcess:
        self.port = free_port()
        env = {**os.environ, **self.env, "KUBECONFIG": self.kubeconfig, ENV_VAR: self.kubeconfig}
        paths = self.pythonpath + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        if wait:
            self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = 30) -> None:
        """Wait for the liveness endpoint (it answers once the operator has started up)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"The operator exited early:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"The operator did not become alive:\n{self.logs()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer removal, no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, *, timeout: float = 20) -> int | None:
        """SIGTERM and wait, like a pod deletion; SIGKILL if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def restart(self, *, kill: bool = True, timeout: float = 30) -> KopfProcess:
        self.kill() if kill else self.terminate()
        self.restarts += 1
        return self.start(timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> KopfProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()
