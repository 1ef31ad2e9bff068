"""The confined child of the execute step: runs a staged phase's stages against the local run directory.

    python -m optismith.pipeline.child --scratch DIR --events-fd N

It holds no credentials and (where the sandbox allows) has no network; it reads the staging plan, runs each
stage with its output sent to the stage's log file, reports progress as JSON lines on descriptor N (never
on stdout), declares what the stages wrote (out/declared.json) and how it ended (out/child-result.json).
The supervisor (optismith.pipeline.execute) trusts none of it for success: a missing result is a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from optismith.errors import OptismithError
from optismith.pipeline.capture import redirected_output
from optismith.pipeline.runner import run_stage
from optismith.pipeline.staging import ISOLATION_ENV, Declared, ExecuteResult, Scratch, write_record
from optismith.results import Isolation, StageSummary
from optismith.runs import layout
from optismith.spec import parse_manifest
from optismith.storage.local import LocalStorage


class RecordingStorage(LocalStorage):
    """The local run directory, remembering every key written or deleted: the execute step's declaration."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.changes: dict[str, str] = {}  # key -> "write" | "delete", the last change wins

    def _wrote(self, key: str) -> None:
        self.changes[self._key(key)] = "write"

    def _key(self, key: str) -> str:
        return self._path(key).relative_to(self.root).as_posix()

    def write_bytes(self, key: str, data: bytes) -> None:
        super().write_bytes(key, data)
        self._wrote(key)

    def upload_file(self, key: str, path: Path) -> None:
        super().upload_file(key, path)
        self._wrote(key)

    def delete(self, key: str) -> None:
        super().delete(key)
        clean = self._key(key)
        for known in [k for k in self.changes if k == clean or k.startswith(clean + "/")]:
            del self.changes[known]
        self.changes[clean] = "delete"

    def declared(self) -> Declared:
        return Declared(writes=sorted(k for k, v in self.changes.items() if v == "write"),
                        deletes=sorted(k for k, v in self.changes.items() if v == "delete"))


def events_writer(descriptor: int) -> Callable[[dict[str, object]], None]:
    stream: IO[str] = os.fdopen(descriptor, "w", buffering=1, encoding="utf-8")

    def emit(event: dict[str, object]) -> None:
        with contextlib.suppress(OSError):  # the supervisor went away: keep working, it will find the result
            stream.write(json.dumps(event) + "\n")

    return emit


def run_phase(scratch: Scratch, emit: Callable[[dict[str, object]], None], isolation: Isolation | None) -> int:
    plan = scratch.read_plan()
    manifest = parse_manifest(plan.manifest, source=str(scratch.plan_file))
    store = RecordingStorage(scratch.run)
    summaries: list[StageSummary] = []

    def finish(result: ExecuteResult) -> None:
        write_record(scratch.declared_file, store.declared())
        write_record(scratch.child_result_file, result)

    def progress(message: str) -> None:
        emit({"event": "progress", "message": message})

    for name in plan.stages:
        emit({"event": "stage", "stage": name, "target": plan.target, "state": "started"})
        started = time.perf_counter()
        try:
            with redirected_output(scratch.run / layout.stage_log(name, plan.target)):
                run_stage(manifest, store, name, target=plan.target, workdir=scratch.work, progress=progress,
                          isolation=isolation)
        except OptismithError as error:
            seconds = round(time.perf_counter() - started, 2)
            summaries.append(StageSummary(stage=name, status="failed", seconds=seconds))
            emit({"event": "stage", "stage": name, "target": plan.target, "state": "failed", "seconds": seconds})
            finish(ExecuteResult(status="failed", stages=summaries, reason=error.reason, message=error.message,
                                 exit_code=error.exit_code, isolation=isolation))
            return error.exit_code
        seconds = round(time.perf_counter() - started, 2)
        summaries.append(StageSummary(stage=name, status="succeeded", seconds=seconds))
        emit({"event": "stage", "stage": name, "target": plan.target, "state": "succeeded", "seconds": seconds})
        write_record(scratch.declared_file, store.declared())  # a crash in a later stage keeps these
    finish(ExecuteResult(status="succeeded", stages=summaries, isolation=isolation))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optismith.pipeline.child")
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    raw = os.environ.get(ISOLATION_ENV)
    isolation = Isolation.model_validate_json(raw) if raw else None
    scratch = Scratch(Path(args.scratch))
    try:
        return run_phase(scratch, events_writer(args.events_fd), isolation)
    except OptismithError as error:  # before any stage ran: an unreadable plan
        write_record(scratch.child_result_file, ExecuteResult(
            status="failed", reason=error.reason, message=error.message, exit_code=error.exit_code,
            isolation=isolation))
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
