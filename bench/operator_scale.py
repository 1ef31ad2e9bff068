"""Operator scale: N ModelOptimizations through the emulated API server and a processless kubelet.

    python -m bench.operator_scale                       # 100, 500 and 1000 resources
    python -m bench.operator_scale --counts 20           # a quick run

For each N, a fresh cluster: the test API server (tests/harness) and a kubelet stand-in whose workers
finish without a process (bench/scale_kubelet.py), so what is measured is the operator's own cost. The
operator is the production entrypoint (`optismith operator`) in its own process, with the Helm chart's
defaults except the concurrency cap (--max-jobs, default N: no resource waits for a slot). Resources are
created back to back; a watch records when each one's Succeeded condition turns True, and the API
server's request history gives when each one's first Job was created. Operator peak RSS is VmHWM and CPU
is utime+stime of its process (/proc); the emulator and kubelet run in this process and are reported
separately. Prints markdown tables; writes JSON to --out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.common import (
    ROOT,
    LoadMonitor,
    add_out_argument,
    command_line,
    csv_ints,
    fmt,
    machine,
    markdown_table,
    now_utc,
    proc_cpu_seconds,
    proc_status_kib,
    write_json,
)
from bench.scale_kubelet import InstantKubelet
from tests.harness import ApiServer, KopfProcess
from tests.harness.kopf_runner import free_port

CRD = ROOT / "crds" / "modeloptimizations.optismith.io.yaml"
NAMESPACE = "ml"
PLURAL_PATH = f"/apis/optismith.io/v1alpha1/namespaces/{NAMESPACE}/modeloptimizations"
CHART_INTERVAL_S = 5.0  # charts/optismith/values.yaml operator.reconcileInterval
GOALS = {"all_succeeded_s": 60.0, "cr_to_job_p99_s": 1.0, "operator_peak_rss_mb": 200.0}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class OptismithOperator(KopfProcess):
    """`optismith operator` as the chart runs it (not `kopf run --verbose`: its logging costs CPU too)."""

    def __init__(self, *, metrics_port: int, **options: Any) -> None:
        super().__init__("optismith.controller.handlers", **options)
        self.metrics_port = metrics_port

    @property
    def command(self) -> list[str]:
        namespaces = [arg for ns in self.namespaces for arg in ("-n", ns)]
        return [self.python, "-m", "optismith.cli", "operator", *namespaces,
                f"--liveness=http://127.0.0.1:{self.port}/healthz", f"--metrics-port={self.metrics_port}"]


def resource_name(index: int) -> str:
    return f"mo-{index:05d}"


def resource(name: str, output: Path) -> dict[str, Any]:
    return {"apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": {"uri": f"/fake/ok/{name}/model"}, "output": {"uri": str(output)},
                     "calibration": {"synthetic": True}, "execution": {"backoff": "1s", "maxAttempts": 2}}}


class SucceededWatch:
    """When each resource's Succeeded condition first turned True, from a watch (event time, not polling)."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.succeeded: dict[str, float] = {}
        self.done = threading.Event()
        self.expected = 0
        self._thread = threading.Thread(target=self._run, name="succeeded-watch", daemon=True)

    def start(self, expected: int) -> SucceededWatch:
        self.expected = expected
        self._thread.start()
        return self

    def _run(self) -> None:
        client = self.api.client
        while not self.done.is_set():
            try:
                for event in client.stream(PLURAL_PATH, timeout=3600):
                    self._seen(event.get("object") or {})
                    if self.done.is_set():
                        return
            except OSError:
                time.sleep(0.1)

    def _seen(self, body: dict[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name")
        conditions = (body.get("status") or {}).get("conditions") or []
        if name and name not in self.succeeded and any(
                c.get("type") == "Succeeded" and c.get("status") == "True" for c in conditions):
            self.succeeded[name] = time.time()
            if len(self.succeeded) >= self.expected:
                self.done.set()


class ProcessSampler(threading.Thread):
    """The operator's RSS and CPU, and this process's CPU (the emulator and kubelet), twice a second."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        super().__init__(name="process-sampler", daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, float, float]] = []  # (s, operator RSS KiB, operator CPU s, ours)
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(self.interval_s):
            rss = proc_status_kib(self.pid, "VmRSS")
            cpu = proc_cpu_seconds(self.pid)
            if rss is not None and cpu is not None:
                self.samples.append((round(time.monotonic() - started, 1), rss, round(cpu, 2),
                                     round(time.process_time(), 2)))

    def busiest(self, seconds: float = 5.0) -> tuple[float, float]:
        """The highest mean CPU use (cores) of the operator and of this process over any `seconds` window."""
        step = max(1, round(seconds / self.interval_s))
        best = (0.0, 0.0)
        for before, after in zip(self.samples, self.samples[step:], strict=False):
            span = after[0] - before[0]
            if span > 0:
                best = (max(best[0], (after[2] - before[2]) / span), max(best[1], (after[3] - before[3]) / span))
        return best


def create_all(api: ApiServer, names: list[str], output: Path, rate: float = 0.0) -> None:
    """Over one keep-alive connection: back to back, as `kubectl apply -f dir/` would, or `rate` per second."""
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    started = time.monotonic()
    try:
        for index, name in enumerate(names):
            if rate > 0:
                time.sleep(max(0.0, started + index / rate - time.monotonic()))
            connection.request("POST", PLURAL_PATH, json.dumps(resource(name, output)),
                               {"Content-Type": "application/json", "User-Agent": "bench-kubectl"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 201:
                raise RuntimeError(f"creating {name} failed: {response.status} {body[:300]!r}")
    finally:
        connection.close()


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def first_job_latencies(api: ApiServer, names: list[str]) -> dict[str, float]:
    """Seconds from each resource's create request to its first Job's create request."""
    created = {r.name: r.timestamp for r in api.history.creates(resource="modeloptimizations", succeeded=True)}
    first: dict[str, float] = {}
    for record in api.history.creates(resource="jobs", succeeded=True):
        owner = (record.name or "").split("-g", 1)[0]
        if owner in created and owner not in first:
            first[owner] = record.timestamp - created[owner]
    return {name: first[name] for name in names if name in first}


def operator_requests(api: ApiServer) -> dict[str, int]:
    """Requests the operator made, by client and verb (kopf watches/patches; the official client's creates)."""
    counts: Counter[str] = Counter()
    for record in api.history.records:
        agent = record.user_agent
        client = "kopf" if agent.startswith("kopf") else "kubernetes-client" if "OpenAPI" in agent else None
        if client is not None:
            counts[f"{client} {record.verb} {record.rbac_resource}"] += 1
    return dict(sorted(counts.items()))


def start_profiler(prefix: Path | None, pid: int, count: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the operator while the resources run (collapsed stacks, for flame graphs)."""
    if prefix is None:
        return None
    binary = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if binary is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    out = prefix.with_name(f"{prefix.name}-n{count}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--gil",
                             "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)


def run_scale(count: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "api").mkdir()
    api = ApiServer(workdir=workdir / "api").start()
    kubelet: InstantKubelet | None = None
    operator: OptismithOperator | None = None
    try:
        api.register_crd(yaml.safe_load(CRD.read_text()))
        api.create_namespace(NAMESPACE)
        (workdir / "kubelet").mkdir()
        kubelet = InstantKubelet(api, workdir=workdir / "kubelet", command_map={"optismith": sys.executable},
                                 candidates=args.candidates).start()
        max_jobs = args.max_jobs or count
        env = {"OPTISMITH_MAX_JOBS": str(max_jobs), "OPTISMITH_RECONCILE_INTERVAL": str(args.interval),
               "PYTHONUNBUFFERED": "1"}
        operator = OptismithOperator(kubeconfig=api.kubeconfig, namespaces=[NAMESPACE], env=env,
                                     log_path=workdir / "operator.log", metrics_port=free_port()).start()
        pid = operator.process.pid if operator.process else 0
        startup_cpu = proc_cpu_seconds(pid) or 0.0
        names = [resource_name(i) for i in range(count)]
        watch = SucceededWatch(api).start(count)
        sampler = ProcessSampler(pid)
        sampler.start()
        profiler = start_profiler(args.profile, pid, count)
        harness_cpu = time.process_time()
        log(f"N={count}: creating resources (operator pid {pid}, maxJobs {max_jobs}, interval {args.interval}s)")
        started = time.time()
        create_all(api, names, workdir / "runs", args.rate)
        created_s = time.time() - started
        finished = watch.done.wait(args.timeout)
        elapsed = (max(watch.succeeded.values()) - started) if watch.succeeded else None
        cpu = (proc_cpu_seconds(pid) or 0.0) - startup_cpu
        hwm_kib = proc_status_kib(pid, "VmHWM") or 0
        rss_kib = proc_status_kib(pid, "VmRSS") or 0
        harness_cpu = time.process_time() - harness_cpu
        sampler.stop.set()
        watch.done.set()
        stop_profiler(profiler)
        latencies = first_job_latencies(api, names)
        durations = [watch.succeeded[n] - started for n in names if n in watch.succeeded]
        job_creates = list(api.history.creates(resource="jobs", succeeded=True))
        result = {
            "resources": count, "max_jobs": max_jobs, "interval_s": args.interval, "rate_per_s": args.rate,
            "all_succeeded": bool(finished), "succeeded": len(watch.succeeded),
            "create_seconds": round(created_s, 2),
            "all_succeeded_s": round(elapsed, 2) if finished and elapsed is not None else None,
            "succeeded_s_p50": percentile(durations, 50), "succeeded_s_p99": percentile(durations, 99),
            "cr_to_job_p50_s": percentile(list(latencies.values()), 50),
            "cr_to_job_p99_s": percentile(list(latencies.values()), 99),
            "cr_to_job_max_s": max(latencies.values()) if latencies else None,
            "operator_startup_cpu_s": round(startup_cpu, 2), "operator_cpu_s": round(cpu, 2),
            "operator_cpu_ms_per_resource": round(1e3 * cpu / count, 2),
            "operator_peak_rss_mb": round(hwm_kib / 1024, 1), "operator_rss_end_mb": round(rss_kib / 1024, 1),
            "harness_cpu_s": round(harness_cpu, 2),
            "jobs_created": len(job_creates),
            "duplicate_jobs": len(api.history.duplicates(resource="jobs")),
            "api_requests": len(api.history), "operator_requests": operator_requests(api),
            "operator_busiest_5s_cores": round(sampler.busiest()[0], 2),
            "harness_busiest_5s_cores": round(sampler.busiest()[1], 2),
            "samples": [dict(zip(("s", "operator_rss_kib", "operator_cpu_s", "harness_cpu_s"), sample, strict=True))
                        for sample in sampler.samples[:: max(1, len(sampler.samples) // 200)]],
        }
        log(f"N={count}: {json.dumps({k: v for k, v in result.items() if not isinstance(v, dict | list)})}")
        return result
    finally:
        if operator is not None:
            operator.terminate()
        if kubelet is not None:
            kubelet.stop()
        api.stop()


def growth(results: list[dict[str, Any]], key: str) -> str:
    """How a quantity grows from the smallest to the largest N, as an exponent: 1 is linear."""
    import math

    points = [(r["resources"], r[key]) for r in results if r.get(key)]
    if len(points) < 2 or points[0][1] <= 0:
        return "-"
    (n0, v0), (n1, v1) = points[0], points[-1]
    return f"{math.log(v1 / v0) / math.log(n1 / n0):.2f}"


def render(document: dict[str, Any]) -> str:
    results = document["results"]
    headers = ["N", "all Succeeded s", "per-resource done p50/p99 s", "CR→Job p50 ms", "CR→Job p99 ms",
               "operator CPU s", "CPU ms/resource", "operator peak RSS MB", "harness CPU s", "operator requests"]
    rows = [[r["resources"], fmt(r["all_succeeded_s"], 1) if r["all_succeeded"] else f"not all ({r['succeeded']})",
             f"{fmt(r['succeeded_s_p50'], 1)} / {fmt(r['succeeded_s_p99'], 1)}",
             fmt((r["cr_to_job_p50_s"] or 0) * 1e3, 0), fmt((r["cr_to_job_p99_s"] or 0) * 1e3, 0),
             fmt(r["operator_cpu_s"], 1), fmt(r["operator_cpu_ms_per_resource"], 1),
             fmt(r["operator_peak_rss_mb"], 0), fmt(r["harness_cpu_s"], 1),
             sum(r["operator_requests"].values())] for r in results]
    load = document["load"]
    lines = [f"Operator scale ({document['started_at']}, {document['machine']['cpu_model']}, "
             f"{document['machine']['cores']} cores; reconcile interval {document['settings']['interval_s']}s; "
             f"resources created {arrival(document['settings']['rate_per_s'])}; "
             f"{document['settings'].get('candidates', 2)} candidates per result; "
             f"load average {load['loadavg_1m_mean']} (max {load['loadavg_1m_max']}))", "",
             markdown_table(headers, rows), "",
             f"Growth exponent from N={results[0]['resources']} to N={results[-1]['resources']} (1 = linear): "
             f"time to all Succeeded {growth(results, 'all_succeeded_s')}, operator CPU "
             f"{growth(results, 'operator_cpu_s')}, peak RSS {growth(results, 'operator_peak_rss_mb')}", ""]
    largest = results[-1]
    checks = [("all Succeeded", largest["all_succeeded_s"], GOALS["all_succeeded_s"], "s"),
              ("CR→Job p99", largest["cr_to_job_p99_s"], GOALS["cr_to_job_p99_s"], "s"),
              ("operator peak RSS", largest["operator_peak_rss_mb"], GOALS["operator_peak_rss_mb"], "MB")]
    for label, value, goal, unit in checks:
        verdict = "met" if value is not None and value <= goal else "MISSED"
        lines.append(f"- N={largest['resources']}: {label} {fmt(value, 2)} {unit} (goal ≤ {goal:g} {unit}): {verdict}")
    return "\n".join(lines)


def arrival(rate: float) -> str:
    return f"at {rate:g} per second" if rate > 0 else "back to back"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=csv_ints, default=[100, 500, 1000], help="comma-separated resource counts")
    parser.add_argument("--interval", type=float, default=CHART_INTERVAL_S,
                        help="OPTISMITH_RECONCILE_INTERVAL seconds (default: the chart's)")
    parser.add_argument("--max-jobs", type=int, default=0, help="OPTISMITH_MAX_JOBS (default: N)")
    parser.add_argument("--candidates", type=int, default=12,
                        help="candidates in each results.json (a real CPU run measures about 12)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="create this many resources per second (default: all back to back, a burst)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all to succeed")
    parser.add_argument("--profile", type=Path, help="record the operator with py-spy to PROFILE-n<N>.txt")
    add_out_argument(parser, "operator_scale")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    document: dict[str, Any] = {"schema": "optismith.io/bench/operator-scale/v1", "command": command_line(),
                                "started_at": now_utc(), "machine": machine(), "goals": GOALS,
                                "settings": {"interval_s": args.interval, "rate_per_s": args.rate,
                                             "max_jobs": args.max_jobs or "N", "candidates": args.candidates,
                                             "timeout_s": args.timeout}}
    # Under /var/tmp, not /tmp: the kubelet maps a pod's /tmp mount to a private directory (see conftest).
    workdir = Path(tempfile.mkdtemp(prefix="optismith-scale-", dir="/var/tmp"))
    try:
        with LoadMonitor() as load:
            document["results"] = [run_scale(count, args, workdir / f"n{count}") for count in args.counts]
        document["load"] = load.summary()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, document)
    print(render(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
