"""A worker that skips TensorFlow: same command line as `optismith stage`, writes the records the operator
reads, in milliseconds. It measures the operator's own behaviour and cost, not the pipeline's.

Behaviour is steered by the model URI (a path that is never opened):
  .../fail-<phase>/...        every attempt of that phase fails with a StorageError-like message
  .../flaky-<phase>/...       the first attempt of that phase fails, later ones succeed
  .../sleep-<seconds>/...     each phase sleeps that long (for mid-run restarts, updates, deletions)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

PHASE_OF = {"inspect": "prepare", "benchmark": "measure", "select": "finalize", "promote": "promote"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--manifest-env")
    parser.add_argument("--run-uri", required=True)
    parser.add_argument("--target")
    args = parser.parse_args()
    manifest = json.loads(os.environ[args.manifest_env])
    spec, meta = manifest["spec"], manifest["metadata"]
    uri = spec["model"]["uri"]
    phase = next(PHASE_OF[s] for s in args.stages if s in PHASE_OF)
    run = Path(args.run_uri)
    run.mkdir(parents=True, exist_ok=True)
    attempts_file = run / f".attempts-{phase}-{args.target or ''}"
    attempt = int(attempts_file.read_text()) + 1 if attempts_file.exists() else 1
    attempts_file.write_text(str(attempt))
    sleep = re.search(r"sleep-([0-9.]+)", uri)
    if sleep:
        time.sleep(float(sleep.group(1)))
    if f"fail-{phase}" in uri or (f"flaky-{phase}" in uri and attempt == 1):
        message = {
            "status": "failed",
            "reason": "StorageError",
            "message": f"S3 endpoint unreachable while trying to download (attempt {attempt})",
        }
        Path(os.environ["OPTISMITH_TERMINATION_LOG"]).write_text(json.dumps(message))
        print("error [StorageError]: S3 endpoint unreachable", file=sys.stderr)
        return 5
    for stage in args.stages:
        name = f"{stage}@{args.target}" if args.target else stage
        (run / "stages").mkdir(exist_ok=True)
        (run / "stages" / f"{name}.json").write_text(json.dumps({"stage": stage, "status": "succeeded"}))
    if phase == "finalize":
        candidate = {
            "variant": "tflite-int8",
            "target": "cpu",
            "latency_p50_ms": 0.2,
            "latency_p99_ms": 0.4,
            "throughput_per_s": 5000.0,
            "size_bytes": 1000,
            "accuracy_drop": 0.001,
            "speedup": 3.0,
            "passed": True,
        }
        baseline = {**candidate, "variant": "tf-savedmodel", "latency_p50_ms": 0.6, "speedup": 1.0}
        results = {
            "name": meta["name"],
            "selection": {
                "objective": "latencyP50",
                "batch_size": 1,
                "winner": "tflite-int8",
                "winner_target": "cpu",
                "outcome": "selected",
                "message": "tflite-int8 is 3.00x faster",
                "candidates": [candidate, baseline],
            },
        }
        (run / "results.json").write_text(json.dumps(results))
    if phase == "promote":
        payload = {"promoted": True, "uri": spec["promotion"]["uri"], "digest": "sha256:" + "0" * 64}
        (run / "stages" / "promote.json").write_text(json.dumps({"stage": "promote", "payload": payload}))
    Path(os.environ["OPTISMITH_TERMINATION_LOG"]).write_text(json.dumps({"status": "succeeded"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
