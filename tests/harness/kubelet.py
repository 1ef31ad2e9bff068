"""
A kubelet stand-in for tests: one node that runs pods as local subprocesses.

It talks to the emulator over HTTP only, like real components do, from its own
thread and event loop (so the API server's loop never waits for a process):

* a scheduler: GPU fit on the node (unfit pods stay Pending with ``PodScheduled=False``,
  reason ``Unschedulable``), then a binding;
* the node agent: runs the init containers in order, each to completion, then the first container
  (see ``containers.py`` for the command/env/path translation), at most ``max_parallel`` pods at a time,
  writes the Pod status as a kubelet does (``initContainerStatuses`` and ``containerStatuses``:
  termination message, exit code, restart counts; a failed init container fails a ``Never`` pod), and
  kills processes of deleted pods;
* the Job controller (``jobcontroller.py``), unless disabled.

Usage::

    with Kubelet(api, command_map={'optismith': f'{venv}/bin/optismith'}, gpus=0) as kubelet:
        ...  # create Jobs; they run as local processes
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .client import ApiStatusError, AsyncClient, resource_path
from .containers import (
    GPU_RESOURCE,
    ContainerConfigError,
    ProcessSpec,
    StartError,
    Translator,
    gpu_request,
    termination_message,
)
from .informers import Informer
from .jobcontroller import JobController
from .serving import ApiServer
from .store import timestamp

logger = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclasses.dataclass
class ContainerRun:
    """One container's process of a pod (init containers first, in order)."""

    name: str
    argv: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    pid: int | None = None
    exit_code: int | None = None
    message: str = ""


@dataclasses.dataclass
class PodRun:
    """What the node did with a pod; for assertions (``kubelet.runs``). ``argv``/``env``/``cwd``/``pid`` are
    the current (last started) container's; ``exit_code`` and ``message`` the pod's outcome: the failed
    init container's, or the main container's."""

    namespace: str
    name: str
    argv: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cwd: str = ""
    pid: int | None = None
    exit_code: int | None = None
    message: str = ""
    killed: bool = False
    containers: list[ContainerRun] = dataclasses.field(default_factory=list)


def _conditions(*pairs: tuple[str, bool], reason: str | None = None, message: str | None = None) -> list[Obj]:
    now = timestamp()
    result = []
    for kind, ok in pairs:
        cond: Obj = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if not ok and reason:
            cond["reason"] = reason
        if not ok and message:
            cond["message"] = message
        result.append(cond)
    return result


class NodeAgent:
    def __init__(
        self,
        client: AsyncClient,
        translator: Translator,
        *,
        workdir: Path,
        node_name: str,
        max_parallel: int,
        gpus: int,
        max_grace_seconds: float,
        namespace: str | None,
    ) -> None:
        self.client = client
        self.translator = translator
        self.workdir = workdir
        self.node_name = node_name
        self.gpus_total = gpus
        self.gpus_free = gpus
        self.max_grace_seconds = max_grace_seconds
        self.runs: list[PodRun] = []
        self._slots = asyncio.Semaphore(max_parallel)
        self._gpu_freed = asyncio.Condition()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.pods = Informer(client, resource_path("v1", "pods", namespace), self._on_pod)

    async def run(self) -> None:
        await self._register_node()
        try:
            await self.pods.run()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _register_node(self) -> None:
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": "16Gi", "pods": "110"}
        if self.gpus_total:
            capacity[GPU_RESOURCE] = str(self.gpus_total)
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name}}
        with contextlib.suppress(ApiStatusError):
            await self.client.create("/api/v1/nodes", node)
        await self.client.patch(
            f"/api/v1/nodes/{self.node_name}/status",
            {
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": timestamp(),
                            "lastTransitionTime": timestamp(),
                        }
                    ],
                }
            },
        )

    def _on_pod(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            task = self._tasks.get(uid)
            if task is not None and not task.done():
                task.cancel()
            return
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if uid in self._tasks or phase != "Pending" or node not in (None, self.node_name):
            return
        self._tasks[uid] = asyncio.create_task(self._run_pod(pod), name=f"pod-{pod['metadata']['name']}")

    def _path(self, pod: Obj, subresource: str | None = None) -> str:
        meta = pod["metadata"]
        return resource_path("v1", "pods", meta["namespace"], meta["name"], subresource)

    async def _patch_status(self, pod: Obj, status: Obj) -> None:
        try:
            await self.client.patch(self._path(pod, "status"), {"status": status})
        except ApiStatusError as e:
            if e.status != 404:  # a deleted pod needs no status
                raise

    async def _run_pod(self, pod: Obj) -> None:
        gpus = gpu_request(pod)
        record = PodRun(pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.runs.append(record)
        reserved = False
        try:
            async with self._gpu_freed:
                if gpus > self.gpus_free:
                    await self._report_unschedulable(pod)
                    await self._gpu_freed.wait_for(lambda: gpus <= self.gpus_free)
                self.gpus_free -= gpus
                reserved = True
            if not await self._bind(pod):
                return
            async with self._slots:
                await self._run_container(pod, record)
        except asyncio.CancelledError:
            record.killed = True
        except Exception:
            logger.exception("Pod %s/%s failed in the node agent", record.namespace, record.name)
        finally:
            if reserved:
                async with self._gpu_freed:
                    self.gpus_free += gpus
                    self._gpu_freed.notify_all()

    async def _report_unschedulable(self, pod: Obj) -> None:
        message = (
            f"0/1 nodes are available: 1 Insufficient {GPU_RESOURCE}. preemption: 0/1 nodes are "
            f"available: 1 No preemption victims found for incoming pod."
        )
        await self._patch_status(
            pod,
            {
                "phase": "Pending",
                "conditions": _conditions(("PodScheduled", False), reason="Unschedulable", message=message),
            },
        )

    async def _bind(self, pod: Obj) -> bool:
        """Bind the pod to this node; False when it was deleted first (a Job past its deadline, say), so
        there is nothing to run, as a kubelet never sees a pod deleted before it was scheduled."""
        try:
            await self.client.create(
                self._path(pod, "binding"),
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": pod["metadata"]["name"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
                },
            )
        except ApiStatusError as e:
            if e.status == 404:
                return False
            if e.status != 409:  # already bound (e.g. retried): fine
                raise
        await self._patch_status(pod, {"phase": "Pending", "conditions": _conditions(("PodScheduled", True))})
        return True

    async def _fetch(self, pod: Obj, kind: str, name: str) -> Obj | None:
        try:
            obj: Obj = await self.client.get(resource_path("v1", kind, pod["metadata"]["namespace"], name))
            return obj
        except ApiStatusError as e:
            if e.status == 404:
                return None
            raise

    async def _prepare(self, pod: Obj, container: Obj) -> ProcessSpec:
        """Retry while config is missing, as the kubelet does (with CreateContainerConfigError)."""
        pod_dir = self.workdir / "pods" / pod["metadata"]["namespace"] / pod["metadata"]["name"]

        async def fetch(kind: str, name: str) -> Obj | None:
            return await self._fetch(pod, kind, name)

        reported = False
        while True:
            try:
                return await self.translator.prepare(pod, container, fetch, pod_dir, self.workdir)
            except ContainerConfigError as e:
                if not reported:
                    await self._patch_status(
                        pod,
                        {
                            "phase": "Pending",
                            "containerStatuses": [
                                {
                                    "name": container["name"],
                                    "image": container.get("image", ""),
                                    "imageID": "",
                                    "ready": False,
                                    "started": False,
                                    "restartCount": 0,
                                    "state": {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}},
                                }
                            ],
                        },
                    )
                    reported = True
                await asyncio.sleep(0.5)

    async def _run_init_containers(self, pod: Obj, record: PodRun) -> bool:
        """Each init container to completion, in order (restarted on failure unless restartPolicy is
        Never); False when the pod failed."""
        policy = pod["spec"].get("restartPolicy", "Always")
        main = pod["spec"]["containers"][0]
        done: list[Obj] = []
        waiting = {"waiting": {"reason": "PodInitializing"}}
        for container in pod["spec"].get("initContainers") or []:
            restarts = 0
            while True:
                started_at = timestamp()
                run = ContainerRun(container["name"])
                record.containers.append(run)
                try:
                    spec = await self._prepare(pod, container)
                except StartError as e:
                    spec, exit_code, message = None, 128, str(e)
                if spec is not None:
                    record.argv, record.env, record.cwd = spec.argv, spec.env, str(spec.cwd)
                    run.argv, run.env = spec.argv, spec.env
                    running = self._container_status(
                        container, None, restarts, {}, {"running": {"startedAt": started_at}}, ready=False)
                    status = {"phase": "Pending", "initContainerStatuses": [*done, running],
                              "containerStatuses": [self._container_status(main, None, 0, {}, waiting, ready=False)],
                              "conditions": _conditions(("PodScheduled", True), ("Initialized", False),
                                                        reason="ContainersNotInitialized",
                                                        message=f"containers with incomplete status: "
                                                                f"[{container['name']}]")}
                    exit_code = await self._spawn(pod, spec, record, run, status)
                    message = termination_message(spec, container, exit_code)
                run.exit_code, run.message = exit_code, message
                terminated: Obj = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                   "startedAt": started_at, "finishedAt": timestamp(),
                                   "containerID": f"harness://{run.pid or 0}"}
                if message:
                    terminated["message"] = message
                final_status = self._container_status(container, run.pid, restarts, {}, {"terminated": terminated},
                                                      ready=exit_code == 0)
                if exit_code == 0:
                    done.append(final_status)
                    break
                if policy == "Never":
                    record.exit_code, record.message = exit_code, message
                    await self._patch_status(pod, {
                        "phase": "Failed", "initContainerStatuses": [*done, final_status],
                        "containerStatuses": [self._container_status(main, None, 0, {}, waiting, ready=False)],
                        "conditions": _conditions(("PodScheduled", True), ("Initialized", False),
                                                  ("ContainersReady", False), ("Ready", False),
                                                  reason="PodFailed")})
                    return False
                restarts += 1
        if done:
            await self._patch_status(pod, {"initContainerStatuses": done})
        return True

    async def _run_container(self, pod: Obj, record: PodRun) -> None:
        if not await self._run_init_containers(pod, record):
            return
        container = pod["spec"]["containers"][0]
        policy = pod["spec"].get("restartPolicy", "Always")
        restarts = 0
        last_state: Obj = {}
        while True:
            started_at = timestamp()
            try:
                spec = await self._prepare(pod, container)
            except StartError as e:
                await self._report_exit(
                    pod, container, 128, "StartError", str(e), started_at, restarts, last_state, final=True
                )
                record.exit_code, record.message = 128, str(e)
                return
            record.argv, record.env, record.cwd = spec.argv, spec.env, str(spec.cwd)
            run = ContainerRun(container["name"], spec.argv, spec.env)
            record.containers.append(run)
            exit_code = await self._execute(pod, container, spec, started_at, restarts, last_state, record, run)
            run.exit_code = exit_code
            run.message = termination_message(spec, container, exit_code)
            message = termination_message(spec, container, exit_code)
            record.exit_code, record.message = exit_code, message
            again = exit_code != 0 and policy in ("OnFailure", "Always")
            reason = "Completed" if exit_code == 0 else "Error"
            last_state = await self._report_exit(
                pod,
                container,
                exit_code,
                reason,
                message,
                started_at,
                restarts,
                last_state,
                final=not again,
                pid=record.pid,
            )
            if not again:
                return
            restarts += 1

    async def _execute(
        self,
        pod: Obj,
        container: Obj,
        spec: ProcessSpec,
        started_at: str,
        restarts: int,
        last_state: Obj,
        record: PodRun,
        run: ContainerRun | None = None,
    ) -> int:
        status = {
            "phase": "Running",
            "startTime": started_at,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": _conditions(
                ("PodScheduled", True),
                ("Initialized", True),
                ("ContainersReady", True),
                ("Ready", True),
            ),
            "containerStatuses": [
                self._container_status(
                    container, None, restarts, last_state, {"running": {"startedAt": started_at}}, ready=True
                )
            ],
        }
        return await self._spawn(pod, spec, record, run, status)

    async def _spawn(self, pod: Obj, spec: ProcessSpec, record: PodRun, run: ContainerRun | None, status: Obj) -> int:
        """Start the process, post `status` (its pid as the container id), wait for the exit code."""
        with open(spec.log_path, "ab") as log:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=spec.cwd,
                env=spec.env,
                start_new_session=True,
            )
        record.pid = process.pid
        if run is not None:
            run.pid = process.pid
        for key in ("containerStatuses", "initContainerStatuses"):
            for container_status in status.get(key) or []:
                if "running" in container_status["state"]:
                    container_status["containerID"] = f"harness://{process.pid}"
        try:
            await self._patch_status(pod, status)
            code = await process.wait()
        except asyncio.CancelledError:  # the pod was deleted: stop it like a kubelet would
            grace = min(float(pod["spec"].get("terminationGracePeriodSeconds", 30)), self.max_grace_seconds)
            await asyncio.shield(self._kill(process, grace))
            raise
        return 128 - code if code < 0 else code  # killed by signal N -> 128+N, as containers report

    async def _kill(self, process: asyncio.subprocess.Process, grace: float) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.wait_for(process.wait(), wait)
                return
            except TimeoutError:
                continue

    @staticmethod
    def _container_status(
        container: Obj, pid: int | None, restarts: int, last_state: Obj, state: Obj, ready: bool
    ) -> Obj:
        image = container.get("image", "")
        status: Obj = {
            "name": container["name"],
            "image": image,
            "imageID": f"harness://{image}",
            "containerID": f"harness://{pid or 0}",
            "ready": ready,
            "started": ready,
            "restartCount": restarts,
            "state": state,
        }
        if last_state:
            status["lastState"] = last_state
        return status

    async def _report_exit(
        self,
        pod: Obj,
        container: Obj,
        exit_code: int,
        reason: str,
        message: str,
        started_at: str,
        restarts: int,
        last_state: Obj,
        *,
        final: bool,
        pid: int | None = None,
    ) -> Obj:
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": timestamp(),
            "containerID": f"harness://{pid or 0}",
        }
        if message:
            terminated["message"] = message
        if final:
            phase = "Succeeded" if exit_code == 0 else "Failed"
            reason_ready = "PodCompleted" if exit_code == 0 else "PodFailed"
            await self._patch_status(
                pod,
                {
                    "phase": phase,
                    "conditions": _conditions(
                        ("PodScheduled", True),
                        ("Initialized", True),
                        ("ContainersReady", False),
                        ("Ready", False),
                        reason=reason_ready,
                    ),
                    "containerStatuses": [
                        self._container_status(
                            container, pid, restarts, last_state, {"terminated": terminated}, ready=False
                        )
                    ],
                },
            )
        else:  # OnFailure: the same pod restarts its container
            await self._patch_status(
                pod,
                {
                    "containerStatuses": [
                        self._container_status(
                            container,
                            None,
                            restarts + 1,
                            {"terminated": terminated},
                            {
                                "waiting": {
                                    "reason": "CrashLoopBackOff",
                                    "message": "back-off restarting failed container",
                                }
                            },
                            ready=False,
                        )
                    ]
                },
            )
        return {"terminated": terminated}

    def read_log(self, namespace: str, pod: str, container: str | None, query: Mapping[str, str]) -> str | None:
        path = self.workdir / "pods" / namespace / pod / "log"
        return path.read_text(errors="replace") if path.exists() else None


class Kubelet:
    """The node (scheduler + kubelet) and the Job controller, in a background thread."""

    def __init__(
        self,
        api: ApiServer | str,
        *,
        workdir: str | os.PathLike[str] | None = None,
        command_map: Mapping[str, str | Sequence[str]] | None = None,
        image_entrypoints: Mapping[str, Sequence[str]] | None = None,
        path_map: Mapping[str, str] | None = None,
        max_parallel: int = 2,
        gpus: int = 0,
        node_name: str = "harness-node",
        extra_env: Mapping[str, str] | None = None,
        inherit_env: Sequence[str] = Translator.inherit_env,
        termination_message_env: str | None = "TERMINATION_MESSAGE_PATH",
        expose_kubeconfig: bool = True,
        job_controller: bool = True,
        backoff_base: float = 0.1,
        max_grace_seconds: float = 2.0,
        namespace: str | None = None,
    ) -> None:
        self.api = api if isinstance(api, ApiServer) else None
        self.url = api.url if isinstance(api, ApiServer) else api
        self._own_tmp = tempfile.TemporaryDirectory(prefix="kubelet-") if workdir is None else None
        self.workdir = Path(workdir) if workdir is not None else Path(self._own_tmp.name)  # type: ignore[union-attr]
        env = dict(extra_env or {})
        account: dict[str, str] = {}
        if expose_kubeconfig and self.api is not None and "KUBECONFIG" not in env:
            account["KUBECONFIG"] = str(self.api.kubeconfig)  # stands in for the service account's token
        self.translator = Translator(
            command_map=dict(command_map or {}),
            image_entrypoints=dict(image_entrypoints or {}),
            path_map=dict(path_map or {}),
            inherit_env=tuple(inherit_env),
            extra_env=env,
            service_account_env=account,
            termination_message_env=termination_message_env,
        )
        self.node_name = node_name
        self.max_parallel = max_parallel
        self.gpus = gpus
        self.max_grace_seconds = max_grace_seconds
        self.job_controller_enabled = job_controller
        self.backoff_base = backoff_base
        self.namespace = namespace
        self.node: NodeAgent | None = None
        self.jobs: JobController | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.exception: BaseException | None = None

    @property
    def runs(self) -> list[PodRun]:
        return list(self.node.runs) if self.node is not None else []

    def logs(self, namespace: str, pod: str) -> str:
        return self.node.read_log(namespace, pod, None, {}) or "" if self.node is not None else ""

    def start(self, timeout: float = 10) -> Kubelet:
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"The kubelet did not start: {self.exception!r}")
        if self.exception is not None:
            raise RuntimeError("The kubelet did not start") from self.exception
        if self.api is not None and self.node is not None:
            self.api.call(self.api.emulator.log_sources.append, self.node.read_log)
        return self

    def stop(self, timeout: float = 15) -> None:
        if self.api is not None and self.node is not None:
            with contextlib.suppress(Exception):
                self.api.call(self.api.emulator.log_sources.remove, self.node.read_log)
        if self._loop is not None and self._main is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._main.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._own_tmp is not None:
            self._own_tmp.cleanup()

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            self.exception = e
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._main = asyncio.current_task()
        async with AsyncClient(self.url, user_agent="harness-kubelet/v1.31.0") as client:
            self.node = NodeAgent(
                client,
                self.translator,
                workdir=self.workdir,
                node_name=self.node_name,
                max_parallel=self.max_parallel,
                gpus=self.gpus,
                max_grace_seconds=self.max_grace_seconds,
                namespace=self.namespace,
            )
            self.jobs = (
                JobController(client, backoff_base=self.backoff_base, namespace=self.namespace)
                if self.job_controller_enabled
                else None
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.node.run())
                    if self.jobs is not None:
                        tg.create_task(self.jobs.run())
                    await self.node.pods.synced.wait()
                    if self.jobs is not None:
                        await self.jobs.jobs.synced.wait()
                        await self.jobs.pods.synced.wait()
                    self._ready.set()
            except asyncio.CancelledError:
                pass
