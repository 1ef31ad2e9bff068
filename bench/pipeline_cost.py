"""Pipeline cost: wall time and peak memory of every stage, each in its own process (as a Job runs it).

    python -m bench.pipeline_cost                        # digits and MobileNetV2
    python -m bench.pipeline_cost --models digits        # a quick run

For each model the manifest is what a user would write (bench/sources.py: the model, its calibration and
evaluation data, everything else default), and every stage runs as `optismith stage NAME` in a fresh
process against one run directory. Reported per stage: the stage's own duration from its record
(stages/<stage>.json; it includes importing TensorFlow when the stage is the first thing in the process
to need it), and the process's wall time, CPU time and peak RSS from wait4(). This script never imports
TensorFlow itself (the models are made in a child process): a child's ru_maxrss starts from its parent's.
Prints markdown tables; writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    LoadMonitor,
    add_out_argument,
    command_line,
    fmt,
    machine,
    markdown_table,
    now_utc,
    write_json,
)
from bench.sources import make_source_in_subprocess, manifest, model_names

STAGES: tuple[tuple[str, str | None], ...] = (
    ("inspect", None), ("freeze", None), ("optimize", None), ("quantize", None), ("convert", None),
    ("benchmark", "cpu"), ("evaluate", "cpu"), ("select", None), ("report", None),
)
DEFAULT_MODELS = ("digits", "mobilenetv2")
DIGITS_BENCHMARK = {"batchSizes": [1, 8], "timeBudget": "2s"}  # as examples/digits/optimization.yaml


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_stage_process(manifest_path: Path, run_dir: Path, stage: str, target: str | None,
                      log_path: Path) -> dict[str, Any]:
    """`optismith stage` in a fresh process; its wall time and peak RSS from the kernel."""
    command = [sys.executable, "-m", "optismith.cli", "stage", stage, "-f", str(manifest_path),
               "--run-uri", str(run_dir)]
    if target:
        command += ["--target", target]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPTISMITH_TERMINATION_LOG": str(log_path) + ".term"}
    started = time.perf_counter()
    with open(log_path, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"exit_code": process.returncode, "process_seconds": time.perf_counter() - started,
            "process_peak_rss_bytes": usage.ru_maxrss * 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def import_cost(workdir: Path) -> dict[str, Any]:
    """What every stage process that touches a model pays before its stage starts: importing TensorFlow."""
    command = [sys.executable, "-c", "import tensorflow"]
    started = time.perf_counter()
    with open(workdir / "import.log", "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        _, _, usage = os.wait4(process.pid, 0)
    return {"process_seconds": time.perf_counter() - started, "process_peak_rss_bytes": usage.ru_maxrss * 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime}


def measure_model(name: str, workdir: Path) -> dict[str, Any]:
    source = make_source_in_subprocess(name, workdir / "sources")
    benchmark = DIGITS_BENCHMARK if name == "digits" else None
    document = manifest(source, workdir / "runs", benchmark=benchmark)
    manifest_path = workdir / f"{name}.yaml"
    manifest_path.write_text(yaml.safe_dump(document, sort_keys=False))
    run_dir = workdir / "runs" / name
    rows: list[dict[str, Any]] = []
    for stage, target in STAGES:
        label = f"{stage}@{target}" if target else stage
        log(f"{name}: stage {label}")
        process = run_stage_process(manifest_path, run_dir, stage, target, workdir / f"{name}-{label}.log")
        record_path = run_dir / "stages" / f"{label}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        rows.append({"stage": label, "status": record.get("status", "no record"),
                     "seconds": record.get("duration_seconds"), "peak_rss_bytes": record.get("peak_rss_bytes"),
                     "message": str(record.get("message", ""))[:300], **process})
        if process["exit_code"] != 0:
            log(f"{name}: {label} failed (exit {process['exit_code']}); see {workdir / f'{name}-{label}.log'}")
            break
    return {"model": name, "manifest": document["spec"], "stages": rows,
            "total_stage_seconds": round(sum(r["seconds"] or 0.0 for r in rows), 1),
            "total_process_seconds": round(sum(r["process_seconds"] for r in rows), 1),
            "peak_rss_bytes": max((r["process_peak_rss_bytes"] for r in rows), default=0)}


def render(document: dict[str, Any]) -> str:
    load = document["load"]
    parts = [f"Pipeline cost ({document['started_at']}, {document['machine']['cpu_model']}, "
             f"{document['machine']['cores']} cores; load average {load['loadavg_1m_mean']} "
             f"(max {load['loadavg_1m_max']}), other processes used {load['other_processes_cores_mean']} cores)", ""]
    headers = ["stage", "stage s", "process s", "CPU s", "peak RSS MiB", "status"]
    for result in document["models"]:
        rows = [[r["stage"], fmt(r["seconds"], 1), fmt(r["process_seconds"], 1), fmt(r["cpu_seconds"], 1),
                 fmt(r["process_peak_rss_bytes"] / 2**20, 0), r["status"]] for r in result["stages"]]
        rows.append(["**total**", fmt(result["total_stage_seconds"], 1), fmt(result["total_process_seconds"], 1),
                     fmt(sum(r["cpu_seconds"] for r in result["stages"]), 1),
                     fmt(result["peak_rss_bytes"] / 2**20, 0), ""])
        parts += [f"### {result['model']}", "", markdown_table(headers, rows), ""]
    tf = document["import_tensorflow"]
    parts.append(f"`import tensorflow` alone, in a fresh process: {tf['process_seconds']:.1f} s, "
                 f"{tf['cpu_seconds']:.1f} CPU s, peak RSS {tf['process_peak_rss_bytes'] / 2**20:.0f} MiB "
                 "(each stage process that touches a model pays it once; a phase Job pays it once for all "
                 "of its stages).")
    return "\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=model_names, default=list(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, help="keep models, run directories and logs here")
    add_out_argument(parser, "pipeline_cost")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="optismith-cost-"))
    document: dict[str, Any] = {"schema": "optismith.io/bench/pipeline-cost/v1", "command": command_line(),
                                "started_at": now_utc(), "machine": machine()}
    try:
        with LoadMonitor() as load:
            workdir.mkdir(parents=True, exist_ok=True)
            document["import_tensorflow"] = import_cost(workdir)
            document["models"] = [measure_model(name, workdir) for name in args.models]
        document["load"] = load.summary()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, document)
    print(render(document))
    return 0 if all(r["status"] == "succeeded" for m in document["models"] for r in m["stages"]) else 1


if __name__ == "__main__":
    sys.exit(main())
