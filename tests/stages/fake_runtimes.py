"""Fake runtimes and run directories for the measuring stages (benchmark, evaluate, select, report,
promote), so their tests do not depend on TensorFlow or on how fast the real runtimes are.

A fake artifact is a JSON file: {"units": {"<threads>": work units per inference}, "jitter": extra
random units (0..jitter), "noise": output perturbation, "fail_batches": [batch sizes that raise],
"fixed_batch": the only batch size its input takes (None: any)}.
One work unit is a fixed amount of real computation (small matrix products), so a variant with a third
of the baseline's units is measurably about three times faster.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import optismith.runtimes as runtimes
from optismith.results import StageRecord, VariantRecord
from optismith.runs.layout import stage_record
from optismith.runs.stage import StageContext
from optismith.runtimes import IOSpec, Runtime, Session
from optismith.spec import ModelOptimization
from optismith.storage.local import LocalStorage

FAKE = "fake-cpu"
FAKE_GPU = "fake-gpu"
MISSING = "fake-missing"
_WORK = np.random.default_rng(0).random((64, 64))
_WEIGHTS = np.random.default_rng(1).normal(size=(64, 10))


class FakeSession(Session):
    def __init__(self, config: dict[str, Any], threads: int) -> None:
        self.units = int(config["units"].get(str(threads), config["units"].get("1", 1)))
        self.jitter = int(config.get("jitter", 0))
        self.noise = float(config.get("noise", 0.0))
        self.fail_batches = set(config.get("fail_batches", []))
        # Touched memory, so the resident set really grows while the session is open.
        self.ballast = np.ones(int(config.get("ballast_mb", 0)) * 2**20 // 8)
        self.rng = np.random.default_rng(threads)
        self.inputs = [IOSpec("image", "float32", (config.get("fixed_batch"), 8, 8, 1))]
        self.outputs = [IOSpec("probabilities", "float32", (None, 10))]
        self.closed = False
        FakeRuntime.open_sessions += 1

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        (x,) = feeds
        if x.shape[0] in self.fail_batches:
            raise ValueError(f"batch {x.shape[0]} is not supported")
        units = self.units + (int(self.rng.integers(0, self.jitter + 1)) if self.jitter else 0)
        for _ in range(units * 8):
            _WORK @ _WORK
        logits = x.reshape(x.shape[0], -1).astype(np.float64) @ _WEIGHTS
        if self.noise:
            # A function of each row alone, so results do not depend on how samples are batched.
            phase = x.reshape(x.shape[0], -1).sum(axis=1, keepdims=True) * 113.0
            logits = logits + self.noise * np.sin(np.arange(10) * 7.3 + phase)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return [(exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ballast = np.empty(0)
            FakeRuntime.open_sessions -= 1


class FakeRuntime(Runtime):
    name = FAKE
    open_sessions: ClassVar[int] = 0
    loads: ClassVar[list[tuple[str, int]]] = []

    @classmethod
    def availability(cls) -> str | None:
        return None

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        config = json.loads(artifact.read_text())
        cls.loads.append((artifact.parent.name, threads))
        return FakeSession(config, threads)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {"fake-runtime": "1.0"}


class MissingRuntime(FakeRuntime):
    name = MISSING

    @classmethod
    def availability(cls) -> str | None:
        return "fake-missing not installed"


class FakeGpuSession(FakeSession):
    """A device-resident session: `bind` times the model alone, `run` adds `copy_units` of work (the
    host<->device copies); batches in "oom_batches" fail the way ONNX Runtime's CUDA arena does."""

    def __init__(self, config: dict[str, Any], threads: int) -> None:
        super().__init__(config, threads)
        self.copy_units = int(config.get("copy_units", 0))
        self.oom_batches = set(config.get("oom_batches", []))

    @property
    def device_resident(self) -> bool:
        return True

    def _compute(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if feeds[0].shape[0] in self.oom_batches:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory")
        return super().run(feeds)

    def bind(self, feeds: list[np.ndarray]) -> Any:
        return lambda: self._compute(feeds)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        for _ in range(self.copy_units * 8):
            _WORK @ _WORK
        return self._compute(feeds)

    def execution(self) -> dict[str, Any]:
        return {"providers": ["FakeCUDAExecutionProvider"], "io": "device"}


class FakeGpuRuntime(FakeRuntime):
    """Computes on the GPU as well (the fake of ONNX Runtime with its CUDA provider); records its options."""

    name = FAKE_GPU
    devices: ClassVar[tuple[Any, ...]] = ("cpu", "gpu")
    options_seen: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        config = json.loads(artifact.read_text())
        cls.loads.append((artifact.parent.name, threads))
        cls.options_seen.append(dict(options or {}))
        if (options or {}).get("device") == "gpu" and config.get("device_resident", True):
            return FakeGpuSession(config, threads)
        return FakeSession(config, threads)


def install_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fakes in the runtime registry (name -> module path) for one test only."""
    monkeypatch.setitem(runtimes.RUNTIMES, FAKE, f"{__name__}:FakeRuntime")
    monkeypatch.setitem(runtimes.RUNTIMES, FAKE_GPU, f"{__name__}:FakeGpuRuntime")
    monkeypatch.setitem(runtimes.RUNTIMES, MISSING, f"{__name__}:MissingRuntime")
    FakeRuntime.open_sessions = 0
    FakeRuntime.loads = []
    FakeGpuRuntime.options_seen = []


def manifest(
    run_root: Path,
    *,
    benchmark: dict[str, Any] | None = None,
    selection: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    promotion: str | None = None,
    targets: list[dict[str, Any]] | None = None,
) -> ModelOptimization:
    spec: dict[str, Any] = {
        "model": {"uri": str(run_root / "model")},
        "output": {"uri": str(run_root / "out")},
        "variants": ["tf-savedmodel", "tflite-fp32"],
        "benchmark": {
            "batchSizes": [1, 4],
            "threads": [1],
            "warmupRuns": 2,
            "minRounds": 10,
            "timeBudget": "1s",
            "tieBudget": "1s",
            "stability": "5%",
            "scenarios": ["singleStream", "offline"],
            **(benchmark or {}),
        },
        "selection": selection or {},
        "evaluation": evaluation or {},
    }
    if promotion:
        spec["promotion"] = {"uri": promotion}
    if targets:
        spec["targets"] = targets
    return ModelOptimization.model_validate(
        {
            "apiVersion": "optismith.io/v1alpha1",
            "kind": "ModelOptimization",
            "metadata": {"name": "digits", "namespace": "ml", "generation": 3},
            "spec": spec,
        }
    )


def fake_variant(
    name: str,
    *,
    units: dict[int, int] | int = 1,
    runtime: str = FAKE,
    jitter: int = 0,
    noise: float = 0.0,
    fail_batches: tuple[int, ...] = (),
    status: str = "built",
    size_bytes: int | None = None,
    ballast_mb: int = 0,
    copy_units: int = 0,
    oom_batches: tuple[int, ...] = (),
    fixed_batch: int | None = None,
) -> tuple[VariantRecord, dict[str, Any]]:
    per_threads = units if isinstance(units, dict) else {1: units}
    config = {
        "units": {str(k): v for k, v in per_threads.items()},
        "jitter": jitter,
        "noise": noise,
        "fail_batches": list(fail_batches),
        "ballast_mb": ballast_mb,
        "copy_units": copy_units,
        "oom_batches": list(oom_batches),
        "fixed_batch": fixed_batch,
    }
    record = VariantRecord(
        name=name,
        runtime=runtime,
        status=status,  # type: ignore[arg-type]
        artifact=f"variants/{name}/model.json" if status == "built" else None,
        size_bytes=size_bytes if size_bytes is not None else 1000 * (len(name) + 1),
        built_by="inspect",
        reason="" if status == "built" else "conversion failed",
    )
    return record, config


def make_run(
    tmp_path: Path,
    variants: list[tuple[VariantRecord, dict[str, Any]]],
    *,
    model: ModelOptimization | None = None,
    target: str | None = "cpu",
    samples: int = 16,
) -> StageContext:
    """A run directory with an inspect record listing `variants`, their artifacts and sample inputs."""
    store = LocalStorage(tmp_path / "run")
    for record, config in variants:
        if record.artifact:
            store.write_bytes(record.artifact, json.dumps(config).encode())
    inspect = StageRecord(
        stage="inspect",
        status="succeeded",
        started_at="2025-01-01T00:00:00.000Z",
        finished_at="2025-01-01T00:00:01.000Z",
        duration_seconds=1.0,
        variants=[record for record, _ in variants],
    )
    store.write_bytes(stage_record("inspect"), inspect.model_dump_json().encode())
    rng = np.random.default_rng(3)
    path = tmp_path / "inputs.npz"
    np.savez(path, image=rng.random((samples, 8, 8, 1)).astype(np.float32))
    store.upload_file("samples/inputs.npz", path)
    manifest_ = model or manifest(tmp_path)
    chosen = next((t for t in manifest_.spec.targets if t.name == target), None) if target else None
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return StageContext(manifest=manifest_, store=store, workdir=workdir, target=chosen)


_CLOCK = itertools.count(2)


def store_record(ctx: StageContext, record: StageRecord) -> None:
    """What the pipeline runner does after a stage returns: stamp it (stages run one after another) and store."""
    second = next(_CLOCK)
    record = record.model_copy(
        update={"started_at": f"2025-01-01T00:{second // 60:02d}:{second % 60:02d}.000Z",
                "finished_at": f"2025-01-01T00:{second // 60:02d}:{second % 60:02d}.500Z"}
    )
    ctx.store.write_bytes(stage_record(record.stage, record.target), record.model_dump_json().encode())


def with_target(ctx: StageContext, name: str | None) -> StageContext:
    chosen = next((t for t in ctx.spec.targets if t.name == name), None) if name else None
    return StageContext(manifest=ctx.manifest, store=ctx.store, workdir=ctx.workdir, target=chosen)
