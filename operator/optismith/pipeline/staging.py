"""Staging: a phase that runs the model works on a local copy of what it needs, without credentials.

    fetch    (credentials, no model code) copies the phase's sources (model, calibration, evaluation data)
             and the run-directory keys it reads into a scratch directory, and writes the staging plan:
             the manifest with those URIs rewritten to the local copies.
    execute  (no credentials; confined: optismith.pipeline.execute) runs the phase's stages against the
             local run directory and declares what they wrote and deleted.
    upload   (credentials) publishes only the declared files, only under the run's own prefix, after
             checking each: a relative key without '..', a regular file (no links) inside the local run
             directory, not one of the inputs it was given, not another phase's record. Anything else
             refuses the whole upload.

The scratch directory (`Scratch`) is the only thing the steps share: one emptyDir in a pod, one temporary
directory for `optismith run`. The upload step trusts nothing in it for where to write: the run URI and the
storage settings come from its own command line and manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optismith.errors import DataError, StageError, StorageError, UnsafeArchiveError, UnsafeModelError
from optismith.models.source import fetch_into, split_uri
from optismith.pipeline.plan import phase as phase_named
from optismith.results import Isolation, StageRecord, StageSummary
from optismith.runs import layout
from optismith.spec import ModelOptimization, size_bytes
from optismith.storage import Storage, open_storage
from optismith.storage.base import normalize_key
from optismith.storage.local import LocalStorage, atomic_write

PLAN_SCHEMA = "optismith.io/staging/v1"
ISOLATION_ENV = "OPTISMITH_ISOLATION"  # how the supervisor confined the child, for the child's records


class StagingRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StagingPlan(StagingRecord):
    """What the fetch step staged (staging/plan.json): the execute step runs from it."""

    schema_version: str = PLAN_SCHEMA
    phase: str
    stages: list[str]
    target: str | None = None
    run_uri: str  # the real run directory (for messages; the upload step takes it from its own arguments)
    manifest: dict[str, object]  # the ModelOptimization, its sources rewritten to the local copies
    locations: dict[str, str] = Field(default_factory=dict)  # local path -> the URI it stands for
    inputs: list[str] = Field(default_factory=list)  # run-directory keys fetched (the upload never replaces them)


class Declared(StagingRecord):
    """What the execute step says its stages changed in the run directory (out/declared.json)."""

    writes: list[str] = Field(default_factory=list)
    deletes: list[str] = Field(default_factory=list)


class ExecuteResult(StagingRecord):
    """How the execute step ended (out/result.json). Its exit code is never the verdict: a model can end
    the process with 0 (TensorFlow's Abort op), so a phase succeeded only when this says so."""

    status: str  # "succeeded" | "failed"
    stages: list[StageSummary] = Field(default_factory=list)
    reason: str | None = None
    message: str = ""
    exit_code: int = 0
    isolation: Isolation | None = None


@dataclass(frozen=True)
class Scratch:
    """The directory the three steps share."""

    root: Path

    @property
    def inputs(self) -> Path:  # read-only for the execute step
        return self.root / "inputs"

    @property
    def staging(self) -> Path:  # read-only for the execute step
        return self.root / "staging"

    @property
    def run(self) -> Path:  # the local run directory the stages write
        return self.root / "run"

    @property
    def work(self) -> Path:  # the stages' workdir (caches, intermediate files)
        return self.root / "work"

    @property
    def out(self) -> Path:  # what the execute step reports
        return self.root / "out"

    @property
    def plan_file(self) -> Path:
        return self.staging / "plan.json"

    @property
    def declared_file(self) -> Path:
        return self.out / "declared.json"

    @property
    def result_file(self) -> Path:  # the supervisor's verdict
        return self.out / "result.json"

    @property
    def child_result_file(self) -> Path:  # what the child says (believed only when it exists and parses)
        return self.out / "child-result.json"

    def reset(self) -> None:
        for path in (self.inputs, self.staging, self.run, self.work, self.out):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)

    def read_plan(self) -> StagingPlan:
        return _read(self.plan_file, StagingPlan, "the fetch step has not run (no staging plan)")


def write_record(path: Path, record: BaseModel) -> None:
    data = record.model_dump_json(indent=2).encode()

    def fill(handle: BinaryIO) -> None:
        handle.write(data)

    atomic_write(path, fill)


R = TypeVar("R", bound=BaseModel)


def _read(path: Path, model: type[R], missing: str) -> R:
    if not path.is_file():
        raise StageError(missing, where=str(path), fix="run the steps in order: fetch, execute, upload")
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise StageError(f"{path.name} is not valid: {error.errors()[0]['msg']}", where=str(path),
                         fix="re-run the phase from its fetch step") from None


# --- fetch ------------------------------------------------------------------------------------------


def phase_inputs(phase: str, store: Storage) -> list[str]:
    """The run-directory keys a phase reads: under its `reads` prefixes, except its own stages' records
    (an earlier attempt's, which this attempt replaces)."""
    entry = phase_named(phase)
    own = tuple(f"{layout.STAGES_PREFIX}{name}{suffix}" for name in entry.stages for suffix in (".json", "@"))
    keys = [key for prefix in entry.reads for key in store.list(prefix)]
    return sorted(key for key in keys if not key.startswith(own))


def _copy_local_tree(source: Path, dest: Path, max_size: int) -> Path:
    """Copy a local model (file or directory) refusing links: a link in a model directory would copy a
    host file (say /proc/self/environ) into the run, where the stages publish it."""
    if source.is_file():
        if source.stat().st_size > max_size:
            raise StorageError(f"the model is {source.stat().st_size} bytes, over spec.limits.maxModelSize",
                               where=str(source), fix="raise spec.limits.maxModelSize if the model is right")
        target = dest / source.name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target
    total = 0
    for directory, subdirs, files in os.walk(source):
        for name in [*subdirs, *files]:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"the model directory holds a symbolic link ({path.relative_to(source)})",
                                         where=str(path), fix="replace the link with the file it points to")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise UnsafeArchiveError(f"the model directory holds a special file ({path.relative_to(source)})",
                                         where=str(path), fix="remove it")
            total += path.lstat().st_size if stat.S_ISREG(mode) else 0
            if total > max_size:
                raise StorageError(f"the model is over spec.limits.maxModelSize ({max_size} bytes)",
                                   where=str(source), fix="raise spec.limits.maxModelSize if the model is right")
    target = dest / source.name
    shutil.copytree(source, target, symlinks=True)
    return target


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://")).expanduser().resolve()


def _fetch_model(manifest: ModelOptimization, dest: Path) -> Path:
    spec = manifest.spec
    max_size = size_bytes(spec.limits.max_model_size)
    if spec.model.uri.startswith("s3://"):
        parent, name = split_uri(spec.model.uri)
        return fetch_into(open_storage(parent, spec.storage), name, dest, max_size)
    source = _local_path(spec.model.uri)
    if not source.exists():
        raise StorageError("no such file or directory", where=str(source),
                           fix="check spec.model.uri (relative paths are relative to the manifest)")
    return _copy_local_tree(source, dest, max_size)


def _fetch_data(uri: str, manifest: ModelOptimization, dest: Path) -> Path:
    """One .npz (calibration or evaluation data) into dest/<its name>."""
    max_size = size_bytes(manifest.spec.limits.max_expanded_size)
    if uri.startswith("s3://"):
        parent, name = split_uri(uri)
        if not name:
            raise DataError("the data URI names no file", where=uri, fix="point it at an .npz file")
        store = open_storage(parent, manifest.spec.storage)
        size = store.size(name)
        if size > max_size:
            raise DataError(f"the data file is {size} bytes, over spec.limits.maxExpandedSize", where=uri,
                            fix="use fewer samples, or raise spec.limits.maxExpandedSize")
        target = dest / PurePosixPath(name).name
        store.download_file(name, target)
        return target
    source = _local_path(uri)
    if not source.is_file():
        raise DataError("no such file", where=str(source), fix="check the path (write it with numpy.savez)")
    if source.stat().st_size > max_size:
        raise DataError(f"the data file is {source.stat().st_size} bytes, over spec.limits.maxExpandedSize",
                        where=str(source), fix="use fewer samples, or raise spec.limits.maxExpandedSize")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / source.name
    shutil.copyfile(source, target)
    return target


def fetch(manifest: ModelOptimization, run_uri: str, phase: str, scratch: Scratch, target: str | None = None,
          progress: Callable[[str], None] | None = None) -> StagingPlan:
    """The fetch step: copy the phase's inputs into `scratch` and write its staging plan."""
    entry = phase_named(phase)
    say = progress or (lambda message: None)
    scratch.reset()
    store = open_storage(run_uri, manifest.spec.storage)
    if isinstance(store, LocalStorage):  # fail before the phase runs, not when its results are uploaded
        probe = f".optismith-writable-{os.getpid()}"
        store.write_bytes(probe, b"")
        store.delete(probe)
    inputs = phase_inputs(phase, store)
    if inputs:
        say(f"fetching {len(inputs)} file(s) of the run directory")
    for key in inputs:
        store.download_file(key, scratch.run / key)
    staged = manifest.model_copy(deep=True)
    locations = {str(scratch.run): store.uri}
    spec = staged.spec
    if "model" in entry.sources:
        say(f"fetching {spec.model.uri}")
        local = _fetch_model(manifest, scratch.inputs / "model")
        locations[str(local)] = spec.model.uri
        spec.model.uri = str(local)
    for name, section in (("calibration", spec.calibration), ("evaluation", spec.evaluation)):
        if name in entry.sources and section.uri:
            local = _fetch_data(section.uri, manifest, scratch.inputs / name)
            locations[str(local)] = section.uri
            section.uri = str(local)
    plan = StagingPlan(phase=phase, stages=list(entry.stages), target=target, run_uri=store.uri,
                       manifest=staged.model_dump(mode="json", by_alias=True), locations=locations, inputs=inputs)
    write_record(scratch.plan_file, plan)
    return plan


# --- upload -----------------------------------------------------------------------------------------


def _checked_key(key: str, scratch: Scratch, phase: str, target: str | None, inputs: set[str]) -> str:
    """The key, when the execute step may publish it; otherwise UnsafeModelError (nothing is uploaded)."""
    where = f"{scratch.declared_file} ({key!r})"
    try:
        clean = normalize_key(key, where)
    except StorageError as error:
        raise UnsafeModelError(f"the execute step declared a key outside the run directory: {error.what}",
                               where=where, fix="the model tried to write outside its run; do not trust it") from None
    if not clean or clean != key or key.startswith("/"):
        raise UnsafeModelError("the execute step declared a key that is not a plain relative path", where=where,
                               fix="the model tried to write outside its run; do not trust it")
    if clean in inputs:
        raise UnsafeModelError("the execute step declared a change to one of its own inputs", where=where,
                               fix="the model tried to replace what an earlier phase published; do not trust it")
    own_records = {layout.stage_record(name, target) for name in phase_named(phase).stages}
    if clean.startswith(layout.STAGES_PREFIX) and clean not in own_records:
        raise UnsafeModelError("the execute step declared another phase's stage record", where=where,
                               fix="the model tried to forge a record; do not trust it")
    if clean in (layout.MANIFEST, layout.RESULTS, layout.REPORT):
        raise UnsafeModelError("the execute step declared a file only the finalize phase writes", where=where,
                               fix="the model tried to forge the run's results; do not trust it")
    return clean


def _regular_file(scratch: Scratch, key: str) -> Path:
    """The local file for `key`: no component a link, a regular file, inside the local run directory."""
    root = scratch.run.resolve()
    path = root
    for part in PurePosixPath(key).parts:
        path = path / part
        if path.is_symlink():
            raise UnsafeModelError("the execute step declared a symbolic link", where=str(path),
                                   fix="the model tried to publish a host file; do not trust it")
    if not path.is_file() or not stat.S_ISREG(path.lstat().st_mode) or root not in path.resolve().parents:
        raise UnsafeModelError("the execute step declared something that is not a regular file it wrote",
                               where=str(path), fix="re-run the phase; if it happens again, do not trust the model")
    return path


def _translated(data: bytes, locations: dict[str, str], where: str) -> bytes:
    """A stage record with the scratch paths it mentions replaced by the URIs they stand for, so the run
    says `s3://models/digits`, not `/work/inputs/model/digits`."""
    try:
        record = StageRecord.model_validate_json(data)
    except ValidationError as error:
        raise StageError(f"the execute step wrote an invalid stage record: {error.errors()[0]['msg']}",
                         where=where, fix="re-run the phase") from None
    text = record.model_dump_json(indent=2)
    for local in sorted(locations, key=len, reverse=True):
        text = text.replace(json.dumps(local)[1:-1], json.dumps(locations[local])[1:-1])
    return text.encode()


def upload(manifest: ModelOptimization, run_uri: str, phase: str, scratch: Scratch,
           target: str | None = None) -> ExecuteResult:
    """The upload step: check every declared key, then delete and upload them; the records last, so a
    record never names an artifact that is not there yet. Returns how the execute step ended."""
    result = _read(scratch.result_file, ExecuteResult,
                   "the execute step left no result: it was killed, or the model ended its process")
    declared = _read(scratch.declared_file, Declared, "the execute step declared nothing") \
        if scratch.declared_file.exists() else Declared()
    plan = scratch.read_plan()
    store = open_storage(run_uri, manifest.spec.storage)
    inputs = set(phase_inputs(phase, store))
    writes = [_checked_key(key, scratch, phase, target, inputs) for key in dict.fromkeys(declared.writes)]
    deletes = [_checked_key(key, scratch, phase, target, inputs) for key in dict.fromkeys(declared.deletes)]
    files = {key: _regular_file(scratch, key) for key in writes}
    for key in deletes:
        if key not in files:
            store.delete(key)
    records = [key for key in files if key.startswith(layout.STAGES_PREFIX)]
    for key in [k for k in files if k not in records]:
        store.upload_file(key, files[key])
    for key in records:
        store.write_bytes(key, _translated(files[key].read_bytes(), plan.locations, str(files[key])))
    return result
