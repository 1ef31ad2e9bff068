"""A worker that skips TensorFlow: same command line as `optismith stage`, writes the records the operator
reads, in milliseconds. It measures the operator's own behaviour and cost, not the pipeline's.

Behaviour is steered by the model URI (a path that is never opened):
  .../fail-<phase>/...        every attempt of that phase fails with a StorageError-like message
  .../flaky-<phase>/...       the first attempt of that phase fails, later ones succeed
  .../sleep-<seconds>/...     each phase sleeps that long (for mid-run restarts, updates, deletions)
  .../no-winner/...           the run completes but no variant passes the gates

A staged phase's Job runs it three times (`--step fetch`, `execute`, `upload`, sharing `--scratch`): the
fetch step sleeps or fails as steered, the execute step refuses to run when it was given credentials or the
manifest (the separation of duties, end to end), and the upload step writes the records; each step checks
that the one before it ran on the same volume.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from optismith.results import (
    Candidate,
    PromotionOutcome,
    RunResults,
    Selection,
    StageRecord,
    StageSummary,
    TerminationMessage,
)
from optismith.runs import layout

PHASE_OF = {"inspect": "prepare", "benchmark": "measure", "select": "finalize", "promote": "promote"}
NOW = "2026-01-01T00:00:00.000Z"


def stage_record(stage: str, target: str | None, payload: dict[str, object] | None = None) -> str:
    return StageRecord(stage=stage, target=target, status="succeeded", started_at=NOW, finished_at=NOW,
                       duration_seconds=0.0, payload=payload or {}).model_dump_json()


def results_json(name: str, variants: list[str], winner: bool = True) -> str:
    """results.json of a run that measured `variants` (the first one wins, unless `winner` is False) on cpu."""
    candidates = [
        Candidate(variant=variant, target="cpu", objective_value=0.2 * (i + 1), latency_p50_ms=0.2 * (i + 1),
                  latency_p99_ms=0.4 * (i + 1), throughput_per_s=5000.0 / (i + 1), size_bytes=1000 * (i + 1),
                  accuracy_drop=0.001 if winner else 0.05, speedup=3.0 / (i + 1), passed=winner)
        for i, variant in enumerate(variants)
    ]
    selection = Selection(objective="latencyP50", batch_size=1, winner=variants[0] if winner else None,
                          winner_target="cpu" if winner else None,
                          outcome="selected" if winner else "no-variant-passed",
                          message=f"{variants[0]} is 3.00x faster" if winner else "no variant passed the gates",
                          candidates=candidates)
    return RunResults(name=name, spec_digest="0" * 64, started_at=NOW, finished_at=NOW, environment={},
                      source=None, stages=[], variants=[], benchmarks=[], accuracy=[],
                      selection=selection).model_dump_json()


def succeeded(stages: list[str], target: str | None) -> str:
    return TerminationMessage(status="succeeded", target=target,
                              stages=[StageSummary(stage=s, status="succeeded", seconds=0.0) for s in stages]
                              ).render(4096)


def fail(code: int, reason: str, message: str, target: str | None) -> int:
    Path(os.environ["OPTISMITH_TERMINATION_LOG"]).write_text(
        TerminationMessage(status="failed", target=target, reason=reason, message=message).render(4096))
    print(f"error [{reason}]: {message}", file=sys.stderr)
    return code


def execute_step(scratch: Path, target: str | None) -> int:
    """No credentials, no manifest: what the model-running step of a staged Job may hold."""
    leaked = sorted(k for k in os.environ if k.startswith("AWS_") or k in ("OPTISMITH_MANIFEST", "KUBECONFIG"))
    if leaked:
        return fail(99, "Leak", f"the execute step was given {', '.join(leaked)}", target)
    if not (scratch / "fetched").is_file():
        return fail(98, "OutOfOrder", "the execute step ran before the fetch step", target)
    (scratch / "executed").write_text("ok")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--manifest-env")
    parser.add_argument("--run-uri")
    parser.add_argument("--target")
    parser.add_argument("--step", default="inline")
    parser.add_argument("--scratch")
    args = parser.parse_args()
    if args.step == "execute":
        return execute_step(Path(args.scratch), args.target)
    if args.step == "upload" and not (Path(args.scratch) / "executed").is_file():
        return fail(98, "OutOfOrder", "the upload step ran before the execute step", args.target)
    manifest = json.loads(os.environ[args.manifest_env])
    spec, meta = manifest["spec"], manifest["metadata"]
    uri = spec["model"]["uri"]
    phase = next(PHASE_OF[s] for s in args.stages if s in PHASE_OF)
    run = Path(args.run_uri)
    run.mkdir(parents=True, exist_ok=True)
    attempts_file = run / f".attempts-{phase}-{args.target or ''}"
    if args.step in ("inline", "fetch"):  # the first step of the Job: the one that sleeps or fails
        attempt = int(attempts_file.read_text()) + 1 if attempts_file.exists() else 1
        attempts_file.write_text(str(attempt))
        sleep = re.search(r"sleep-([0-9.]+)", uri)
        if sleep:
            time.sleep(float(sleep.group(1)))
        if f"fail-{phase}" in uri or (f"flaky-{phase}" in uri and attempt == 1):
            return fail(5, "StorageError", f"S3 endpoint unreachable while trying to download (attempt {attempt})",
                        args.target)
    if args.step == "fetch":
        (Path(args.scratch) / "fetched").write_text(phase)
        return 0
    (run / "stages").mkdir(exist_ok=True)
    for stage in args.stages:
        (run / layout.stage_record(stage, args.target)).write_text(stage_record(stage, args.target))
    if phase == "finalize":
        (run / layout.RESULTS).write_text(results_json(meta["name"], ["tflite-int8", "tf-savedmodel"],
                                                       winner="no-winner" not in uri))
    if phase == "promote" and "no-winner" in uri:
        outcome = PromotionOutcome(promoted=False, reason="no variant passed the gates")
        (run / layout.stage_record("promote")).write_text(stage_record("promote", None, outcome.model_dump()))
    elif phase == "promote":
        outcome = PromotionOutcome(promoted=True, uri=spec["promotion"]["uri"], digest="sha256:" + "0" * 64,
                                   variant="tflite-int8", target="cpu")
        (run / layout.stage_record("promote")).write_text(stage_record("promote", None, outcome.model_dump()))
    Path(os.environ["OPTISMITH_TERMINATION_LOG"]).write_text(succeeded(args.stages, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
