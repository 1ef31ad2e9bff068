"""A kubelet stand-in whose containers finish without a process, for measuring the operator at scale.

The harness's kubelet runs every pod as a subprocess; at a thousand resources (three Jobs each) that is
thousands of Python start-ups on two cores, which would measure process creation, not the operator. This
node keeps what the operator reads -- pods created by the Job controller, bound, terminated with exit code
0 and the worker's termination message, the Job's status -- and replaces the process: it writes what
tests/operator/fake_worker.py writes (stage records, and results.json for finalize).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from optismith.runs import layout
from tests.harness.client import AsyncClient
from tests.harness.jobcontroller import JobController
from tests.harness.kubelet import Kubelet, NodeAgent, PodRun
from tests.harness.store import timestamp
from tests.operator.fake_worker import PHASE_OF, results_json, stage_record, succeeded

logger = logging.getLogger(__name__)
NO_PARALLEL_LIMIT = 1_000_000


def worker_arguments(argv: list[str]) -> argparse.Namespace:
    """`optismith stage STAGE... --manifest-env VAR --run-uri URI [--target T] [--step S --scratch DIR]`,
    after the executable. The node runs only a Job's main container (the upload step of a staged Job, which
    writes the records) and stands in for its fetch and execute init containers."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("command")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--manifest-env", required=True)
    parser.add_argument("--run-uri", required=True)
    parser.add_argument("--target")
    parser.add_argument("--step", choices=("inline", "upload"), default="inline")
    parser.add_argument("--scratch")
    # parse_args would exit (SystemExit) on an argument it does not know, which ends the node's event loop
    # instead of failing the one pod: raise an ordinary error for it.
    args, unknown = parser.parse_known_args(argv[1:])
    if unknown:
        raise ValueError(f"the instant node does not know these worker arguments: {unknown}")
    return args


REAL_RUN_VARIANTS = (
    "tflite-int8", "tflite-dynamic-int8", "tflite-int8-io", "tflite-fp16", "tflite-fp32", "onnx-int8",
    "onnx-fp32", "openvino-fp32", "tf-xla", "tf-grappler", "tf-frozen", "tf-savedmodel",
)


def complete_stages(argv: list[str], env: dict[str, str], candidates: int = len(REAL_RUN_VARIANTS)) -> str:
    """Write the records a successful worker leaves in the run directory; returns its termination message."""
    args = worker_arguments(argv)
    manifest = json.loads(env[args.manifest_env])
    run = Path(args.run_uri)
    (run / "stages").mkdir(parents=True, exist_ok=True)
    for stage in args.stages:
        (run / layout.stage_record(stage, args.target)).write_text(stage_record(stage, args.target))
    phase = next(PHASE_OF[s] for s in args.stages if s in PHASE_OF)
    if phase == "finalize":
        # As many candidates as a real CPU run measures: the operator keeps series for each of them.
        names = list(REAL_RUN_VARIANTS[:max(1, candidates)])
        (run / layout.RESULTS).write_text(results_json(manifest["metadata"]["name"], names))
    return succeeded(args.stages, args.target)


class InstantNode(NodeAgent):
    """Binds each pod and reports it terminated (exit 0, with the worker's termination message) in one
    status write: two requests per pod instead of the four a process-running node makes (scheduled,
    running, terminated), which at a thousand resources were a third of the emulator's load."""

    candidates = len(REAL_RUN_VARIANTS)  # how many the written results.json lists

    async def _run_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        record = PodRun(meta["namespace"], meta["name"])
        self.runs.append(record)
        container = pod["spec"]["containers"][0]
        started_at = timestamp()
        try:
            await self.client.create(self._path(pod, "binding"), {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}})
            spec = await self._prepare(pod, container)
            record.argv, record.env = spec.argv, spec.env
            message = complete_stages(spec.argv, spec.env, self.candidates)
            record.exit_code, record.message = 0, message
            await self._report_exit(pod, container, 0, "Completed", message, started_at, 0, {}, final=True)
        except asyncio.CancelledError:
            record.killed = True
        except Exception:
            logger.exception("Pod %s/%s failed in the instant node", record.namespace, record.name)


class InstantKubelet(Kubelet):
    """The harness kubelet (scheduler, node agent, Job controller) with InstantNode as its node agent."""

    def __init__(self, api: Any, *, candidates: int = len(REAL_RUN_VARIANTS), **options: Any) -> None:
        self.candidates = candidates
        options.setdefault("max_parallel", NO_PARALLEL_LIMIT)
        options.setdefault("termination_message_env", "OPTISMITH_TERMINATION_LOG")
        super().__init__(api, **options)

    async def _serve(self) -> None:
        self._main = asyncio.current_task()
        async with AsyncClient(self.url, user_agent="harness-kubelet/v1.31.0") as client:
            self.node = InstantNode(client, self.translator, workdir=self.workdir, node_name=self.node_name,
                                    max_parallel=self.max_parallel, gpus=self.gpus,
                                    max_grace_seconds=self.max_grace_seconds, namespace=self.namespace)
            self.node.candidates = self.candidates
            self.jobs = JobController(client, backoff_base=self.backoff_base, namespace=self.namespace)
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.node.run())
                    tasks.create_task(self.jobs.run())
                    await self.node.pods.synced.wait()
                    await self.jobs.jobs.synced.wait()
                    await self.jobs.pods.synced.wait()
                    self._ready.set()
            except asyncio.CancelledError:
                pass
