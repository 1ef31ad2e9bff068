"""`optismith`: run a ModelOptimization on this machine, run one stage (what a Job does), and helpers.

    optismith run -f examples/digits/optimization.yaml        # the whole plan, locally
    optismith stage inspect freeze --manifest-env OPTISMITH_MANIFEST --run-uri s3://b/p/gen-1
    optismith validate -f manifest.yaml
    optismith verify RUN_URI
    optismith crd > crds/modeloptimizations.optismith.io.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from optismith import __version__
from optismith.errors import OptismithError, SpecError
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


def cmd_run(args: argparse.Namespace) -> int:
    from optismith.pipeline import build_plan, run_plan, run_uri_for
    from optismith.runs import layout
    from optismith.ui import RunDisplay, final_table

    manifest = _manifest_from_args(args)
    if args.output:
        manifest.spec.output.uri = args.output
    run_uri = run_uri_for(manifest, args.run_id or layout.timestamp_run_id())
    local_targets = [t.name for t in manifest.spec.targets if t.kind == "cpu"]
    skipped_targets = [t.name for t in manifest.spec.targets if t.kind != "cpu"]
    plan = build_plan(manifest.spec, targets=local_targets)
    display = RunDisplay(plan, enabled=not args.json and not args.quiet)
    if skipped_targets and not args.json:
        print(f"note: GPU targets {skipped_targets} are not run locally (no cluster); their Jobs run under "
              "the operator")
    with display:
        outcome = run_plan(manifest, run_uri, plan=plan, on_step=display.on_step, progress=display.progress)
    from optismith.storage import open_storage

    store = open_storage(outcome.run_uri, manifest.spec.storage)
    results = RunResults.model_validate_json(store.read_bytes(layout.RESULTS))
    if args.json:
        selection = results.selection.model_dump(mode="json") if results.selection else None
        print(json.dumps({"runUri": outcome.run_uri, "seconds": round(outcome.seconds, 2),
                          "selection": selection}, indent=2))
    else:
        final_table(results, outcome.run_uri, outcome.seconds, batch_size=manifest.spec.selection.batch_size)
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    import tempfile

    from optismith.pipeline import run_stage
    from optismith.storage import open_storage

    manifest = _manifest_from_args(args)
    store = open_storage(args.run_uri, manifest.spec.storage)
    stages: list[StageSummary] = []
    gpus = _gpus_of(manifest, args.target)
    try:
        with tempfile.TemporaryDirectory(prefix="optismith-stage-") as scratch:
            workdir = Path(args.workdir) if args.workdir else Path(scratch)
            for name in args.stages:
                print(f"stage {name}{' @' + args.target if args.target else ''}: started", flush=True)
                record = run_stage(manifest, store, name, target=args.target, workdir=workdir,
                                   progress=lambda message: print(f"  {message}", flush=True))
                stages.append(StageSummary(stage=name, status=record.status,
                                           seconds=round(record.duration_seconds, 2)))
                print(f"stage {name}: {record.status} in {record.duration_seconds:.1f}s", flush=True)
    except OptismithError as error:
        _write_termination_message(TerminationMessage(status="failed", target=args.target, gpus=gpus,
                                                      stages=stages, reason=error.reason, message=error.message))
        raise
    _write_termination_message(TerminationMessage(status="succeeded", target=args.target, gpus=gpus, stages=stages))
    return 0


def _gpus_of(manifest: ModelOptimization, target: str | None) -> list[str]:
    """The GPUs a GPU target's Job sees (nvidia-smi: name and UUID), for its termination message."""
    if not any(t.name == target and t.kind == "gpu" for t in manifest.spec.targets):
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
    run.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.set_defaults(handler=cmd_run)

    stage = sub.add_parser("stage", help="run stages against a run directory (what a Job runs)")
    stage.add_argument("stages", nargs="+", help="stage names, run in order")
    manifest_args(stage)
    stage.add_argument("--run-uri", required=True, help="the run directory (local path or s3://)")
    stage.add_argument("--target", help="target name for per-target stages (benchmark, evaluate)")
    stage.add_argument("--workdir", help="local scratch directory")
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
