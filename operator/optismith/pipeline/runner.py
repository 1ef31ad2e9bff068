"""Run stages against a run directory, recording timing, memory and failures."""

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
from optismith.pipeline.plan import Plan, StageStep, build_plan
from optismith.pipeline.registry import get_stage
from optismith.results import StageRecord
from optismith.runs import layout
from optismith.runs.stage import Stage, StageContext
from optismith.spec import ModelOptimization
from optismith.storage import Storage, open_storage

StepCallback = Callable[[StageStep, str], None]  # (step, "started" | "succeeded" | "failed")


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
) -> StageRecord:
    """Run one stage and store its record. On failure the record says why, and the error is re-raised."""
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
                             error_reason=error.reason)
        _store_failure_record(store, failed)
        raise
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        failed = StageRecord(stage=stage_name, target=target, status="failed", started_at=started_at,
                             finished_at=_now(), duration_seconds=time.perf_counter() - started,
                             peak_rss_bytes=_peak_rss_bytes(), message=message[:2000],
                             error_reason=StageError.reason)
        _store_failure_record(store, failed)
        raise StageError(f"stage {stage_name} failed: {message[:500]}", where=store.uri) from error
    record = record.model_copy(update={
        "stage": stage_name, "target": target, "started_at": started_at, "finished_at": _now(),
        "duration_seconds": time.perf_counter() - started, "peak_rss_bytes": _peak_rss_bytes(),
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


@dataclass
class RunOutcome:
    run_uri: str
    records: list[StageRecord] = field(default_factory=list)
    seconds: float = 0.0


def run_plan(
    manifest: ModelOptimization,
    run_uri: str,
    *,
    plan: Plan | None = None,
    workdir: Path | None = None,
    on_step: StepCallback | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run every step in one process (the local mode): TensorFlow is imported once for all stages."""
    plan = plan or build_plan(manifest.spec)
    store = open_storage(run_uri, manifest.spec.storage)
    outcome = RunOutcome(run_uri=store.uri)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="optismith-") as scratch:
        work = workdir or Path(scratch)
        for step in plan.steps:
            if on_step:
                on_step(step, "started")
            try:
                record = run_stage(manifest, store, step.stage, target=step.target, workdir=work,
                                   progress=progress)
            except OptismithError:
                if on_step:
                    on_step(step, "failed")
                raise
            outcome.records.append(record)
            if on_step:
                on_step(step, "succeeded")
    outcome.seconds = time.perf_counter() - started
    return outcome
