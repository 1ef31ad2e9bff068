"""Run stages against a run directory, recording timing, memory and failures; and the whole plan locally.

`run_plan` runs a staged phase (one that runs the model) as the cluster does -- fetch, execute in a
confined child without credentials, upload (optismith.pipeline.staging) -- and the other phases in this
process, their library output sent to the stage's log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optismith.errors import OptismithError, StageCrashedError, StageError
from optismith.pipeline.capture import redirected_output
from optismith.pipeline.execute import error_for, execute
from optismith.pipeline.plan import JobStep, Plan, StageStep, build_plan
from optismith.pipeline.registry import get_stage
from optismith.pipeline.staging import Scratch, fetch, upload
from optismith.results import Isolation, StageRecord
from optismith.runs import layout
from optismith.runs.stage import Stage, StageContext
from optismith.spec import ModelOptimization, seconds
from optismith.storage import Storage, open_storage

StepCallback = Callable[[StageStep, str], None]  # (step, "started" | "succeeded" | "failed")
LogCallback = Callable[[str, str], None]  # (log file name, line): --verbose


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def run_uri_for(manifest: ModelOptimization, run_id: str) -> str:
    return layout.run_uri(manifest.spec.output.uri, manifest.metadata.namespace, manifest.metadata.name, run_id)


def check_requirements(stage: type[Stage], store: Storage, target: str | None) -> None:
    """The records `stage.requires` names must exist: a per-target requirement of a per-target stage for
    the same target, of a stage that runs once for at least one target."""
    per_target = {name for name in stage.requires if get_stage(name).per_target}
    missing = []
    for name in stage.requires:
        if name not in per_target:
            found = _succeeded(store, layout.stage_record(name))
        elif stage.per_target:
            found = _succeeded(store, layout.stage_record(name, target))
        else:
            found = any(_succeeded(store, key) for key in store.list(layout.STAGES_PREFIX)
                        if key.startswith(f"{layout.STAGES_PREFIX}{name}@"))
        if not found:
            missing.append(name)
    if missing:
        raise StageError(f"stage {stage.name!r} needs the records of {', '.join(missing)}, which have not run",
                         where=store.uri, fix=f"run {', '.join(missing)} first")


def _succeeded(store: Storage, key: str) -> bool:
    """A record that says the stage succeeded (not a failure, nor the placeholder of a stage that crashed)."""
    if not store.exists(key):
        return False
    return StageRecord.model_validate_json(store.read_bytes(key)).status == "succeeded"


CRASHED = ("the stage's process ended before the stage recorded its outcome (it was killed, ran out of memory, "
           "or a library ended the process)")


def run_stage(
    manifest: ModelOptimization,
    store: Storage,
    stage_name: str,
    *,
    target: str | None = None,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    isolation: Isolation | None = None,
) -> StageRecord:
    """Run one stage and store its record. On failure the record says why, and the error is re-raised.
    `isolation` (what confined the stage) goes into the record."""
    stage_cls = get_stage(stage_name)
    target_spec = None
    if stage_cls.per_target:
        if target is None:
            raise StageError(f"stage {stage_name!r} runs per target", fix="pass --target NAME")
        matches = [t for t in manifest.spec.targets if t.name == target]
        if not matches:
            names = [t.name for t in manifest.spec.targets]
            raise StageError(f"no target named {target!r}", where="spec.targets", fix=f"use one of {names}")
        target_spec = matches[0]
    check_requirements(stage_cls, store, target)
    ctx = StageContext(manifest=manifest, store=store, workdir=workdir, target=target_spec,
                       progress=progress or (lambda message: None))
    started_at, started = _now(), time.perf_counter()
    # Replaced by the stage's own record; left behind, it says the process died mid-stage (an exit() or
    # abort() inside a library, a kill), so a run never looks further along than it is.
    _store_failure_record(store, StageRecord(stage=stage_name, target=target, status="failed",
                                             started_at=started_at, finished_at=started_at, duration_seconds=0.0,
                                             message=CRASHED, error_reason=StageCrashedError.reason))
    try:
        record = stage_cls().run(ctx)
    except OptismithError as error:
        failed = StageRecord(stage=stage_name, target=target, status="failed", started_at=started_at,
                             finished_at=_now(), duration_seconds=time.perf_counter() - started,
                             peak_rss_bytes=_peak_rss_bytes(), message=error.message,
                             error_reason=error.reason, isolation=isolation)
        _store_failure_record(store, failed)
        raise
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        failed = StageRecord(stage=stage_name, target=target, status="failed", started_at=started_at,
                             finished_at=_now(), duration_seconds=time.perf_counter() - started,
                             peak_rss_bytes=_peak_rss_bytes(), message=message[:2000],
                             error_reason=StageError.reason, isolation=isolation)
        _store_failure_record(store, failed)
        raise StageError(f"stage {stage_name} failed: {message[:500]}", where=store.uri) from error
    record = record.model_copy(update={
        "stage": stage_name, "target": target, "started_at": started_at, "finished_at": _now(),
        "duration_seconds": time.perf_counter() - started, "peak_rss_bytes": _peak_rss_bytes(),
        "isolation": isolation,
    })
    _store_record(store, record)
    return record


def _store_record(store: Storage, record: StageRecord) -> None:
    store.write_bytes(layout.stage_record(record.stage, record.target), record.model_dump_json(indent=2).encode())


def _store_failure_record(store: Storage, record: StageRecord) -> None:
    """Best effort: when the storage itself is what failed (S3 down), the record cannot be written either,
    and the error to report is the one that failed the stage, not this second one."""
    with contextlib.suppress(OptismithError):
        _store_record(store, record)


def run_logged_stage(manifest: ModelOptimization, store: Storage, stage_name: str, *, target: str | None,
                     workdir: Path, progress: Callable[[str], None] | None = None,
                     isolation: Isolation | None = None) -> StageRecord:
    """run_stage with this process's stderr (where libraries log) sent to the stage's log in the run
    directory. Only stderr: stdout may carry a progress display."""
    log = workdir / "logs" / Path(layout.stage_log(stage_name, target)).name
    log.unlink(missing_ok=True)
    try:
        with redirected_output(log, descriptors=(2,)):
            return run_stage(manifest, store, stage_name, target=target, workdir=workdir, progress=progress,
                             isolation=isolation)
    finally:
        with contextlib.suppress(OptismithError):
            store.upload_file(layout.stage_log(stage_name, target), log)


@dataclass
class RunOutcome:
    run_uri: str
    records: list[StageRecord] = field(default_factory=list)
    seconds: float = 0.0


def run_staged_job(manifest: ModelOptimization, run_uri: str, job: JobStep, scratch: Scratch, *,
                   on_stage: Callable[[str, str | None, str], None] | None = None,
                   progress: Callable[[str], None] | None = None, on_log: LogCallback | None = None,
                   mechanism: str | None = None) -> None:
    """fetch, execute (confined), upload: a staged phase's three steps in a row, as one Job runs them.
    Raises the failed stage's error after its record and logs are uploaded."""
    fetch(manifest, run_uri, job.phase, scratch, job.target, progress)
    deadline = seconds(manifest.spec.execution.stage_deadline)
    result = execute(scratch, on_stage=on_stage, on_progress=progress, on_log=on_log, mechanism=mechanism,
                     deadline=deadline)
    upload(manifest, run_uri, job.phase, scratch, job.target)
    if result.status != "succeeded":
        raise error_for(result.reason, result.message)


def run_plan(
    manifest: ModelOptimization,
    run_uri: str,
    *,
    plan: Plan | None = None,
    on_step: StepCallback | None = None,
    progress: Callable[[str], None] | None = None,
    on_log: LogCallback | None = None,
    mechanism: str | None = None,
) -> RunOutcome:
    """Run every Job of the plan on this machine, one after another: the staged ones confined (their
    stages without credentials or network), the others in this process."""
    plan = plan or build_plan(manifest.spec)
    store = open_storage(run_uri, manifest.spec.storage)
    outcome = RunOutcome(run_uri=store.uri)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="optismith-") as temp:
        for job in (job for group in plan.jobs for job in group):
            steps = [s for s in plan.steps if s.phase == job.phase and s.target == job.target]
            if job.staged:
                _run_staged(manifest, store, job, Scratch(Path(temp) / job.key), steps, on_step, progress,
                            on_log, mechanism)
                outcome.records += [StageRecord.model_validate_json(
                    store.read_bytes(layout.stage_record(s.stage, s.target))) for s in steps]
                continue
            for step in steps:
                if on_step:
                    on_step(step, "started")
                try:
                    record = run_logged_stage(manifest, store, step.stage, target=step.target,
                                              workdir=Path(temp) / "inline", progress=progress)
                except OptismithError:
                    if on_step:
                        on_step(step, "failed")
                    raise
                outcome.records.append(record)
                if on_step:
                    on_step(step, "succeeded")
    outcome.seconds = time.perf_counter() - started
    return outcome


def _run_staged(manifest: ModelOptimization, store: Storage, job: JobStep, scratch: Scratch,
                steps: list[StageStep], on_step: StepCallback | None, progress: Callable[[str], None] | None,
                on_log: LogCallback | None, mechanism: str | None) -> None:
    by_stage = {step.stage: step for step in steps}
    pending = list(steps)

    def on_stage(stage: str, target: str | None, state: str) -> None:
        step = by_stage.get(stage)
        if step is None:
            return
        if state != "started" and step in pending:
            pending.remove(step)
        if on_step:
            on_step(step, state)

    if on_step and steps:
        on_step(steps[0], "started")  # the fetch step is part of the first stage's time on the display
    try:
        run_staged_job(manifest, store.uri, job, scratch, on_stage=on_stage, progress=progress, on_log=on_log,
                       mechanism=mechanism)
    except OptismithError:
        if on_step and pending and pending[0] == steps[0] and len(pending) == len(steps):
            on_step(steps[0], "failed")  # nothing ran: the fetch step failed
        raise
