"""The stage contract: a stage reads what earlier stages recorded in the run directory, does one job,
and returns a StageRecord. The pipeline runner times it, stores the record, and handles failures."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from optismith import catalog
from optismith.errors import StageError
from optismith.results import StageRecord, VariantRecord
from optismith.runs import layout
from optismith.spec import ModelOptimization, ModelOptimizationSpec, TargetSpec
from optismith.storage import Storage
from optismith.storage.local import LocalStorage

ProgressFn = Callable[[str], None]


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

    @property
    def target_name(self) -> str:
        """The target a per-target stage runs for; "local" when it runs outside any target."""
        return self.target.name if self.target else "local"

    # --- records of earlier stages ---

    def record(self, stage: str, target: str | None = None) -> StageRecord:
        key = layout.stage_record(stage, target)
        if not self.store.exists(key):
            raise StageError(f"stage {stage!r} has not run yet (no {key})", where=self.store.uri,
                             fix=f"run the {stage} stage first")
        return StageRecord.model_validate_json(self.store.read_bytes(key))

    def has_record(self, stage: str, target: str | None = None) -> bool:
        return self.store.exists(layout.stage_record(stage, target))

    def variants(self) -> list[VariantRecord]:
        """All variants built so far, in build order; later records of a name replace earlier ones."""
        found: dict[str, VariantRecord] = {}
        for stage in catalog.building_stages():
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

    def read_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays of an .npz in the run directory by name, or None when there is none."""
        if not self.store.exists(key):
            return None
        with np.load(io.BytesIO(self.store.read_bytes(key)), allow_pickle=False) as archive:
            return {name: np.asarray(archive[name]) for name in archive.files}

    def write_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        self.store.write_bytes(key, buffer.getvalue())

    def publish(self, key: str, path: Path) -> int:
        """Upload a file or directory to the run directory; returns its size in bytes."""
        if isinstance(self.store, LocalStorage) and self.store.local_path(key) == path.resolve():
            return tree_size(path)
        if path.is_dir():
            self.store.upload_tree(key, path)
        else:
            self.store.upload_file(key, path)
        return tree_size(path)

    def scratch(self, name: str) -> Path:
        """A fresh local directory for a stage's intermediate files."""
        path = self.workdir / "scratch" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Stage(ABC):
    """One step of the plan, registered by name in optismith.pipeline.registry.

    `requires`: stages whose records must exist before this one runs (the runner checks; for a per-target
    stage that requires a per-target stage, the record of the same target; for a stage that runs once, a
    record of at least one target)."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    per_target: ClassVar[bool] = False  # runs once per target (benchmark, evaluate)

    @abstractmethod
    def run(self, ctx: StageContext) -> StageRecord:
        """Do the work. Return a record (timing fields are filled in by the runner)."""


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
