"""The execute step: run a staged phase's stages in a confined child (optismith.pipeline.child), follow its
progress over a pipe, and say truthfully how it ended.

The child's stdout and stderr go to the phase's log and each stage's to its own (logs/<stage>.log); the
terminal sees only the progress events. Success is the child's result record, never its exit code: a
model can end the process with 0 (TensorFlow's Abort op with exit_without_error). When the child leaves
no result -- it crashed, was killed, ran past the deadline, or a model ended it -- this step writes the
failure record of the stage that was running, so the run still says what happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from pydantic import ValidationError

from optismith import errors
from optismith.errors import OptismithError, StageError
from optismith.pipeline.capture import LogFollower, printable
from optismith.pipeline.sandbox import confine
from optismith.pipeline.staging import ISOLATION_ENV, Declared, ExecuteResult, Scratch, StagingPlan, write_record
from optismith.results import Isolation, StageRecord, StageSummary
from optismith.runs import layout

StageCallback = Callable[[str, str | None, str], None]  # (stage, target, "started" | "succeeded" | "failed")
MAX_EVENT_BYTES = 8192


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Events:
    """Reads the child's JSON-lines events. The child runs the model, so every line is untrusted: junk is
    ignored, text is made printable, and only stage names of the plan are believed."""

    def __init__(self, plan: StagingPlan, on_stage: StageCallback | None, on_progress: Callable[[str], None] | None):
        self.plan = plan
        self.on_stage = on_stage
        self.on_progress = on_progress
        self.running: str | None = None
        self.running_since = ""
        self.summaries: list[StageSummary] = []

    def read(self, descriptor: int) -> None:
        with os.fdopen(descriptor, "rb") as stream:
            for raw in iter(lambda: stream.readline(MAX_EVENT_BYTES), b""):
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    self._handle(json.loads(raw))

    def _handle(self, event: dict[str, object]) -> None:
        if event.get("event") == "progress":
            if self.on_progress:
                self.on_progress(printable(str(event.get("message", "")), 120))
            return
        stage, state = event.get("stage"), event.get("state")
        if event.get("event") != "stage" or stage not in self.plan.stages or state not in (
                "started", "succeeded", "failed"):
            return
        assert isinstance(stage, str) and isinstance(state, str)
        if state == "started":
            self.running, self.running_since = stage, _now()
        elif stage == self.running:
            seconds = event.get("seconds")
            self.summaries.append(StageSummary(stage=stage, status="succeeded" if state == "succeeded" else "failed",
                                               seconds=float(seconds) if isinstance(seconds, int | float) else 0.0))
            self.running = None
        if self.on_stage:
            self.on_stage(stage, self.plan.target, state)


def error_for(reason: str | None, message: str) -> OptismithError:
    """The OptismithError subclass with this reason (so the exit code is the same as in one process)."""
    def subclasses(cls: type[OptismithError]) -> list[type[OptismithError]]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]

    known = {cls.reason: cls for cls in subclasses(errors.OptismithError)}
    return known.get(reason or "", StageError)(message)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _child_result(scratch: Scratch) -> ExecuteResult | None:
    path = scratch.child_result_file
    if not path.is_file():
        return None
    try:
        return ExecuteResult.model_validate_json(path.read_bytes())
    except ValidationError:
        return None


def _why(code: int, timed_out: bool, deadline: float | None) -> str:
    if timed_out:
        return f"it ran past spec.execution.stageDeadline ({deadline:.0f}s) and was stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its process was killed by {name}"
    return (f"its process ended with exit code {code} without a result (a crash, or the model ending the "
            "process: TensorFlow's Abort op exits 0)")


def _crashed(scratch: Scratch, plan: StagingPlan, events: _Events, isolation: Isolation, code: int,
             timed_out: bool, deadline: float | None) -> tuple[ExecuteResult, list[str]]:
    """The result (and the keys of the records written) when the child left none."""
    stage = events.running
    why = _why(code, timed_out, deadline)
    if stage is None:
        message = f"the {plan.phase} phase failed outside any stage: {why}"
        return ExecuteResult(status="failed", stages=events.summaries, reason=StageError.reason, message=message,
                             exit_code=StageError.exit_code, isolation=isolation), []
    log = layout.stage_log(stage, plan.target)
    message = f"stage {stage} failed: {why}; see {log} in the run directory"
    key = layout.stage_record(stage, plan.target)
    record = StageRecord(stage=stage, target=plan.target, status="failed", started_at=events.running_since,
                         finished_at=_now(), duration_seconds=0.0, message=message,
                         error_reason=StageError.reason, isolation=isolation)
    write_record(scratch.run / key, record)
    summaries = [*events.summaries, StageSummary(stage=stage, status="failed", seconds=0.0)]
    if events.on_stage:
        events.on_stage(stage, plan.target, "failed")
    return ExecuteResult(status="failed", stages=summaries, reason=StageError.reason, message=message,
                         exit_code=StageError.exit_code, isolation=isolation), [key]


def execute(scratch: Scratch, *, on_stage: StageCallback | None = None,
            on_progress: Callable[[str], None] | None = None, on_log: Callable[[str, str], None] | None = None,
            mechanism: str | None = None, deadline: float | None = None,
            child_module: str = "optismith.pipeline.child") -> ExecuteResult:
    """Run the staged phase in `scratch`; write out/declared.json and out/result.json and return the result.
    `child_module` is what runs confined (`python -m <it> --scratch DIR --events-fd N`)."""
    plan = scratch.read_plan()
    shutil.rmtree(scratch.out, ignore_errors=True)
    scratch.out.mkdir(parents=True)
    logs = scratch.run / layout.LOGS_PREFIX
    logs.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    command = [sys.executable, "-m", child_module, "--scratch", str(scratch.root),
               "--events-fd", str(write_fd)]
    confinement = confine(command, scratch.root, workdir=scratch.work, protected=(scratch.inputs, scratch.staging),
                          mechanism=mechanism)
    env = {**confinement.env, ISOLATION_ENV: confinement.isolation.model_dump_json()}
    events = _Events(plan, on_stage, on_progress)
    follower = LogFollower(logs, on_log) if on_log else contextlib.nullcontext()
    timed_out = False
    with open(scratch.run / layout.stage_log(plan.phase, plan.target), "ab") as log, follower:
        try:
            process = subprocess.Popen(confinement.argv, env=env, cwd=scratch.work, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
        reader = threading.Thread(target=events.read, args=(read_fd,), name="child-events", daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            _kill(process)
            code, timed_out = process.returncode, True
        except BaseException:  # Ctrl-C: the child must not outlive us
            _kill(process)
            raise
        reader.join(10)
    result = None if timed_out else _child_result(scratch)
    written: list[str] = []
    if result is None:
        result, written = _crashed(scratch, plan, events, confinement.isolation, code, timed_out, deadline)
    _declare(scratch, written)
    write_record(scratch.result_file, result)
    return result


def _declare(scratch: Scratch, extra: list[str]) -> None:
    """The child's declaration, plus the logs and any record written here."""
    declared = Declared()
    if scratch.declared_file.is_file():
        with contextlib.suppress(ValidationError):
            declared = Declared.model_validate_json(scratch.declared_file.read_bytes())
    logs = [p.relative_to(scratch.run).as_posix() for p in sorted((scratch.run / layout.LOGS_PREFIX).glob("*.log"))
            if p.is_file() and not p.is_symlink()]
    writes = list(dict.fromkeys([*declared.writes, *extra, *logs]))
    write_record(scratch.declared_file, Declared(writes=writes, deletes=[d for d in declared.deletes
                                                                         if d not in writes]))

