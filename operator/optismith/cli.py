"""`optismith`: run a ModelOptimization on this machine, run one stage (what a Job does), and helpers.

    optismith run -f examples/digits/optimization.yaml        # the whole plan, locally
    optismith run -f manifest.yaml --json                     # one JSON object on stdout: result or error
    optismith stage select report --manifest-env OPTISMITH_MANIFEST --run-uri s3://b/p/gen-1
    optismith stage inspect freeze ... --step fetch|execute|upload --scratch /work   # a staged Job's steps
    optismith validate -f manifest.yaml
    optismith verify RUN_URI
    optismith crd > crds/modeloptimizations.optismith.io.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optismith import __version__
from optismith.errors import OptismithError, SpecError, StageCrashedError
from optismith.results import RunResults, StageSummary, TerminationMessage
from optismith.spec import ModelOptimization, load_manifest, parse_manifest

TERMINATION_LOG_ENV = "OPTISMITH_TERMINATION_LOG"
TERMINATION_LOG_DEFAULT = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # what Kubernetes keeps of a termination message


def _manifest_from_args(args: argparse.Namespace) -> ModelOptimization:
    if getattr(args, "manifest_env", None):
        raw = os.environ.get(args.manifest_env)
        if not raw:
            raise SpecError(f"environment variable {args.manifest_env} is empty", where=args.manifest_env,
                            fix="pass the manifest as JSON in that variable, or use -f FILE")
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SpecError(f"not valid JSON: {error}", where=args.manifest_env) from None
        return parse_manifest(document, source=args.manifest_env)
    if not args.file:
        raise SpecError("no manifest given", fix="pass -f FILE")
    return load_manifest(args.file)


def _write_termination_message(summary: TerminationMessage) -> None:
    """Kubernetes shows this file's content as the container's termination message; the operator reads
    it to explain a Job's outcome. Outside a pod the default path is usually absent: then skip."""
    path = os.environ.get(TERMINATION_LOG_ENV, TERMINATION_LOG_DEFAULT)
    text = summary.render(TERMINATION_LIMIT)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        pass


def cmd_validate(args: argparse.Namespace) -> int:
    manifest = _manifest_from_args(args)
    print(f"{manifest.metadata.name}: valid ({len(manifest.spec.variants)} variants, "
          f"{len(manifest.spec.targets)} target(s))")
    return 0


def camel(value: Any) -> Any:
    """snake_case keys -> camelCase, recursively: what `--json` prints, like the CRD's fields."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), str(k)): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


@contextlib.contextmanager
def _stdout_for_json() -> Iterator[Any]:
    """While the run goes, anything written to stdout (by us or a library) goes to stderr instead, so
    stdout carries exactly the one JSON object; yields the real stdout for it."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(saved, "w", encoding="utf-8")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(real.fileno(), 1)
        real.close()


def _run(args: argparse.Namespace, report: dict[str, Any]) -> int:
    from optismith.pipeline import build_plan, run_plan, run_uri_for
    from optismith.runs import layout
    from optismith.storage import open_storage
    from optismith.ui import RunDisplay, final_table, print_log_line

    manifest = _manifest_from_args(args)
    if args.output:
        manifest.spec.output.uri = args.output
    run_uri = run_uri_for(manifest, args.run_id or layout.timestamp_run_id())
    report["runUri"] = run_uri
    local_targets = [t.name for t in manifest.spec.targets if t.kind == "cpu"]
    skipped_targets = [t.name for t in manifest.spec.targets if t.kind != "cpu"]
    report["skippedTargets"] = skipped_targets
    plan = build_plan(manifest.spec, targets=local_targets)
    display = RunDisplay(plan, enabled=not args.json and not args.quiet)
    if skipped_targets and not args.json:
        print(f"note: GPU targets {skipped_targets} are not run locally (no cluster); their Jobs run under "
              "the operator")
    with display:
        outcome = run_plan(manifest, run_uri, plan=plan, on_step=display.on_step, progress=display.progress,
                           on_log=print_log_line if args.verbose else None,
                           mechanism=None if args.sandbox in (None, "auto") else args.sandbox)
    store = open_storage(outcome.run_uri, manifest.spec.storage)
    results = RunResults.model_validate_json(store.read_bytes(layout.RESULTS))
    report.update(runUri=outcome.run_uri, seconds=round(outcome.seconds, 2),
                  report=f"{outcome.run_uri}/{layout.REPORT}",
                  selection=results.selection.model_dump(mode="json") if results.selection else None,
                  isolation={k: v.model_dump(mode="json") for k, v in results.isolation.items()})
    if not args.json:
        final_table(results, outcome.run_uri, outcome.seconds, batch_size=manifest.spec.selection.batch_size)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.json:
        return _run(args, {})
    report: dict[str, Any] = {}
    with _stdout_for_json() as stdout:
        try:
            code = _run(args, report)
            document = {"status": "succeeded", **report}
        except OptismithError as error:
            code = error.exit_code
            document = {"status": "failed", "reason": error.reason, "message": error.message, "exitCode": code,
                        **({"runUri": report["runUri"]} if "runUri" in report else {})}
            print(f"error [{error.reason}]: {error.message}", file=sys.stderr)
        except KeyboardInterrupt:
            code = 130
            document = {"status": "failed", "reason": "Interrupted", "message": "interrupted", "exitCode": code}
        except Exception as error:  # a bug: still one JSON object, and the traceback on stderr
            import traceback

            traceback.print_exc()
            code = 1
            document = {"status": "failed", "reason": "InternalError",
                        "message": f"{type(error).__name__}: {error}", "exitCode": code}
        stdout.write(json.dumps(camel(document), indent=2) + "\n")
    return code


def _stage_progress(message: str) -> None:
    print(f"  {message}", flush=True)


def _run_inline(args: argparse.Namespace, manifest: ModelOptimization, stages: list[StageSummary]) -> None:
    """Every stage in this process (finalize, promote; or a staged phase's stages when debugging one)."""
    import tempfile

    from optismith.pipeline.plan import PHASES
    from optismith.pipeline.runner import run_logged_stage
    from optismith.pipeline.sandbox import in_process
    from optismith.storage import open_storage

    store = open_storage(args.run_uri, manifest.spec.storage)
    model_running = {s for p in PHASES if p.staged for s in p.stages}
    with tempfile.TemporaryDirectory(prefix="optismith-stage-") as scratch:
        workdir = Path(args.workdir) if args.workdir else Path(scratch)
        for name in args.stages:
            print(f"stage {name}{' @' + args.target if args.target else ''}: started", flush=True)
            isolation = in_process("run by the credential holder (optismith stage)") if name in model_running else None
            record = run_logged_stage(manifest, store, name, target=args.target, workdir=workdir,
                                      progress=_stage_progress, isolation=isolation)
            stages.append(StageSummary(stage=name, status=record.status, seconds=round(record.duration_seconds, 2)))
            print(f"stage {name}: {record.status} in {record.duration_seconds:.1f}s", flush=True)


def _phase_of(stages: list[str], target: str | None) -> Any:
    from optismith.pipeline.plan import PHASES, JobStep

    for phase in PHASES:
        if list(phase.stages) == stages and phase.staged:
            return JobStep(phase.name, target if phase.per_target else None)
    raise SpecError(f"stages {' '.join(stages)} are not a staged phase", where="optismith stage",
                    fix="--step runs a whole phase that runs the model: " + "; ".join(
                        " ".join(p.stages) for p in PHASES if p.staged))


def _run_step(args: argparse.Namespace, stages: list[StageSummary]) -> None:
    """One step of a staged phase (a Job's container), or all three in a row (`--step staged`)."""
    import tempfile

    from optismith.pipeline import staging
    from optismith.pipeline.execute import error_for, execute
    from optismith.pipeline.runner import run_staged_job

    job = _phase_of(args.stages, args.target)
    if args.step == "execute":  # no manifest and no credentials: everything is in the scratch directory
        result = execute(staging.Scratch(Path(args.scratch)), on_stage=_print_stage, on_progress=_stage_progress)
        print(f"execute: {result.status}" + (f" ({result.reason}: {result.message})" if result.reason else ""),
              flush=True)
        return
    manifest = _manifest_from_args(args)
    if args.step == "staged":
        with tempfile.TemporaryDirectory(prefix="optismith-stage-") as temp:
            run_staged_job(manifest, args.run_uri, job, staging.Scratch(Path(args.scratch or temp)),
                           on_stage=_print_stage, progress=_stage_progress)
        return
    scratch = staging.Scratch(Path(args.scratch))
    if args.step == "fetch":
        plan = staging.fetch(manifest, args.run_uri, job.phase, scratch, job.target, _stage_progress)
        print(f"fetch: staged {len(plan.inputs)} run file(s) and {len(plan.locations) - 1} source(s)", flush=True)
        return
    result = staging.upload(manifest, args.run_uri, job.phase, scratch, job.target)
    stages.extend(result.stages)
    print(f"upload: published the {job.phase} phase's files ({result.status})", flush=True)
    if result.status != "succeeded":
        raise error_for(result.reason, result.message)


def _print_stage(stage: str, target: str | None, state: str) -> None:
    print(f"stage {stage}{' @' + target if target else ''}: {state}", flush=True)


def cmd_stage(args: argparse.Namespace) -> int:
    stages: list[StageSummary] = []
    if args.step in ("fetch", "execute", "upload") and not args.scratch:
        raise SpecError(f"--step {args.step} needs --scratch", where="optismith stage",
                        fix="pass the directory the three steps share (the Job's emptyDir)")
    if args.step != "execute" and not args.run_uri:
        raise SpecError("no run directory given", where="optismith stage", fix="pass --run-uri URI")
    # Replaced when the stages end; left behind, it tells the operator the process died without an outcome
    # (an exit(0) inside TensorFlow must not read as success).
    _write_termination_message(TerminationMessage(status="failed", target=args.target, reason=StageCrashedError.reason,
                                                  message=f"the process ended before stages {', '.join(args.stages)} "
                                                  "recorded an outcome"))
    try:
        if args.step == "inline":
            _run_inline(args, _manifest_from_args(args), stages)
        else:
            _run_step(args, stages)
    except OptismithError as error:
        _write_termination_message(TerminationMessage(status="failed", target=args.target, gpus=_gpus_of(args),
                                                      stages=stages, reason=error.reason, message=error.message))
        raise
    if args.step in ("inline", "upload", "staged"):  # the Job's last step says how the phase went
        _write_termination_message(TerminationMessage(status="succeeded", target=args.target,
                                                      gpus=_gpus_of(args), stages=stages))
    return 0


def _gpus_of(args: argparse.Namespace) -> list[str]:
    """The GPUs a GPU target's Job sees (nvidia-smi: name and UUID), for its termination message; none for
    CPU targets and for steps that hold no manifest (execute)."""
    if not args.target or not (args.file or args.manifest_env):
        return []
    try:
        manifest = _manifest_from_args(args)
    except OptismithError:
        return []
    if not any(t.name == args.target and t.kind == "gpu" for t in manifest.spec.targets):
        return []
    from optismith.measure.gpu import gpu_names

    return gpu_names()


def cmd_verify(args: argparse.Namespace) -> int:
    from optismith.runs.manifest import verify_manifest
    from optismith.storage import open_storage

    manifest = verify_manifest(open_storage(args.run_uri))
    print(f"{args.run_uri}: complete, {len(manifest.files)} files verified")
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from optismith.controller.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from optismith.controller.main import run_operator
    from optismith.controller.settings import OperatorSettings

    namespaces = [] if args.all_namespaces else (args.namespace or None)
    run_operator(OperatorSettings.from_flags(namespaces=namespaces, liveness=args.liveness,
                                             metrics_port=args.metrics_port, verbose=args.verbose or None))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optismith", description="Optimize TensorFlow models for inference.")
    parser.add_argument("--version", action="version", version=f"optismith {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def manifest_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--file", help="ModelOptimization manifest (YAML)")
        p.add_argument("--manifest-env", help="read the manifest as JSON from this environment variable")

    run = sub.add_parser("run", help="run the whole plan on this machine")
    manifest_args(run)
    run.add_argument("--output", help="override spec.output.uri")
    run.add_argument("--run-id", help="run directory name (default: run-<UTC timestamp>)")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object on stdout (the result, or the error) instead of tables")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--verbose", action="store_true",
                     help="also stream the libraries' logs (always kept in the run's logs/)")
    run.add_argument("--sandbox", choices=["auto", "bwrap", "unshare", "none"],
                     help="how stages that run the model are confined (default: the strongest that works)")
    run.set_defaults(handler=cmd_run)

    stage = sub.add_parser("stage", help="run stages against a run directory (what a Job runs)")
    stage.add_argument("stages", nargs="+", help="stage names, run in order")
    manifest_args(stage)
    stage.add_argument("--run-uri", help="the run directory (local path or s3://); not for --step execute")
    stage.add_argument("--target", help="target name for per-target stages (benchmark, evaluate)")
    stage.add_argument("--workdir", help="local scratch directory (inline)")
    stage.add_argument("--step", choices=["inline", "fetch", "execute", "upload", "staged"], default="inline",
                       help="inline: run the stages in this process; fetch/execute/upload: one step of a phase "
                            "that runs the model (execute holds no credentials); staged: all three")
    stage.add_argument("--scratch", help="the directory the fetch, execute and upload steps share")
    stage.set_defaults(handler=cmd_stage)

    validate = sub.add_parser("validate", help="check a manifest")
    manifest_args(validate)
    validate.set_defaults(handler=cmd_validate)

    verify = sub.add_parser("verify", help="check that a run directory is complete and intact")
    verify.add_argument("run_uri")
    verify.set_defaults(handler=cmd_verify)

    crd = sub.add_parser("crd", help="print the CustomResourceDefinition generated from the spec model")
    crd.set_defaults(handler=cmd_crd)

    op = sub.add_parser("operator", help="run the Kubernetes operator")
    # Unset flags leave the setting to OPTISMITH_<NAME> or its default (optismith.controller.settings).
    op.add_argument("--namespace", "-n", action="append", help="namespace to watch (repeatable)")
    op.add_argument("--all-namespaces", "-A", action="store_true", help="watch the whole cluster")
    op.add_argument("--liveness", help="kopf liveness endpoint (default http://0.0.0.0:8080/healthz)")
    op.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9090; 0: off)")
    op.add_argument("--verbose", action="store_true", help="debug logging")
    op.set_defaults(handler=cmd_operator)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
    except OptismithError as error:
        print(f"error [{error.reason}]: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
