"""The stage contract: a stage reads what earlier stages recorded in the run directory, does one job,
and returns a StageRecord. The pipeline runner times it, stores the record, and handles failures."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from optismith.errors import StageError
from optismith.results import StageRecord, VariantRecord
from optismith.spec import ModelOptimization, ModelOptimizationSpec, TargetSpec
from optismith.storage import Storage
from optismith.storage.local import LocalStorage

ProgressFn = Callable[[str], None]


def record_key(stage: str, target: str | None = None) -> str:
    return f"stages/{stage}@{target}.json" if target else f"stages/{stage}.json"


@dataclass
class StageContext:
    """Everything a stage may touch. `store` is the run directory; `workdir` a local scratch/cache
    directory. Artifacts are published to the store under the keys recorded in VariantRecords."""

    manifest: ModelOptimization
    store: Storage
    workdir: Path
    target: TargetSpec | None = None
    progress: ProgressFn = field(default=lambda message: None)

    @property
    def spec(self) -> ModelOptimizationSpec:
        return self.manifest.spec

    # --- records of earlier stages ---

    def record(self, stage: str, target: str | None = None) -> StageRecord:
        key = record_key(stage, target)
        if not self.store.exists(key):
            raise StageError(f"stage {stage!r} has not run yet (no {key})", where=self.store.uri,
                             fix=f"run the {stage} stage first")
        return StageRecord.model_validate_json(self.store.read_bytes(key))

    def has_record(self, stage: str, target: str | None = None) -> bool:
        return self.store.exists(record_key(stage, target))

    def variants(self) -> list[VariantRecord]:
        """All variants built so far, in build order; later records of a name replace earlier ones."""
        found: dict[str, VariantRecord] = {}
        for stage in ("inspect", "freeze", "optimize", "quantize", "convert"):
            if self.has_record(stage):
                for variant in self.record(stage).variants:
                    found[variant.name] = variant
        return list(found.values())

    # --- files ---

    def fetch(self, key: str) -> Path:
        """A local path for a file or directory in the run directory (downloaded once, then cached)."""
        if isinstance(self.store, LocalStorage):
            path = self.store.local_path(key)
            if path.exists():
                return path
        local = self.workdir / "cache" / key
        if local.exists():
            return local
        if self.store.exists(key) and not self.store.is_prefix(key):
            self.store.download_file(key, local)
        else:
            files = self.store.download_tree(key, local)
            if not files:
                raise StageError(f"nothing stored at {key!r}", where=self.store.key_uri(key),
                                 fix="re-run the stage that produces it")
        return local

    def publish(self, key: str, path: Path) -> int:
        """Upload a file or directory to the run directory; returns its size in bytes."""
        if isinstance(self.store, LocalStorage) and self.store.local_path(key) == path.resolve():
            return _size(path)
        if path.is_dir():
            self.store.upload_tree(key, path)
        else:
            self.store.upload_file(key, path)
        return _size(path)

    def scratch(self, name: str) -> Path:
        """A fresh local directory for a stage's intermediate files."""
        path = self.workdir / "scratch" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, key: str, document: object) -> None:
        self.store.write_bytes(key, json.dumps(document, indent=2, sort_keys=True).encode())


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Stage(ABC):
    """One step of the plan. Subclasses register themselves with @register_stage."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    per_target: ClassVar[bool] = False  # runs once per target (benchmark, evaluate)
    description: ClassVar[str] = ""

    @abstractmethod
    def run(self, ctx: StageContext) -> StageRecord:
        """Do the work. Return a record (timing fields are filled in by the runner)."""


_STAGES: dict[str, type[Stage]] = {}
_builtin_loaded = False

STAGE_ORDER = ("inspect", "freeze", "optimize", "quantize", "convert", "benchmark", "evaluate", "select",
               "report")


def register_stage(stage: type[Stage]) -> type[Stage]:
    _STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> type[Stage]:
    load_builtin_stages()
    if name not in _STAGES:
        raise StageError(f"unknown stage {name!r}", fix=f"use one of: {', '.join(STAGE_ORDER)}")
    return _STAGES[name]


def load_builtin_stages() -> None:
    # A flag, not "is the registry empty": importing one stage module directly registers it alone.
    global _builtin_loaded
    if _builtin_loaded:
        return
    from optismith.stages import (  # noqa: F401 - registration side effect
        benchmark,
        convert,
        evaluate,
        freeze,
        inspect,
        optimize,
        promote,
        quantize,
        report,
        select,
    )

    _builtin_loaded = True


def new_record(ctx: StageContext, stage: str, **fields: object) -> StageRecord:
    """A record with placeholder timing; the runner overwrites timing and status fields."""
    return StageRecord(
        stage=stage,
        target=ctx.target.name if ctx.target else None,
        status="succeeded",
        started_at="",
        finished_at="",
        duration_seconds=0.0,
        **fields,  # type: ignore[arg-type]
    )
