"""The fetch and upload steps: what crosses into the scratch directory, and what the upload step publishes
-- only the declared regular files under the run's own prefix, never a link, an input, another phase's
record or a key that climbs out; anything else refuses the whole upload."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from optismith.errors import UnsafeArchiveError, UnsafeModelError
from optismith.pipeline.staging import Declared, ExecuteResult, Scratch, fetch, phase_inputs, upload, write_record
from optismith.results import StageRecord
from optismith.spec import ModelOptimization, parse_manifest
from optismith.storage.local import LocalStorage


def manifest(tmp_path: Path, **spec: Any) -> ModelOptimization:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables").mkdir(exist_ok=True)
    (model / "variables" / "variables.index").write_bytes(b"index")
    data = tmp_path / "calibration.npz"
    data.write_bytes(b"npz")
    return parse_manifest({
        "apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": "m"},
        "spec": {"model": {"uri": str(model)}, "output": {"uri": str(tmp_path / "runs")},
                 "calibration": {"uri": str(data)}, **spec}})


def record(stage: str, target: str | None = None, message: str = "") -> bytes:
    return StageRecord(stage=stage, target=target, status="succeeded", started_at="t", finished_at="t",
                       duration_seconds=0.0, message=message).model_dump_json().encode()


def executed(scratch: Scratch, files: dict[str, bytes], deletes: tuple[str, ...] = ()) -> None:
    """What an execute step leaves: files in the local run dir, its declaration and its result."""
    for key, data in files.items():
        path = scratch.run / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    write_record(scratch.declared_file, Declared(writes=list(files), deletes=list(deletes)))
    write_record(scratch.result_file, ExecuteResult(status="succeeded"))


def test_fetch_copies_the_sources_and_rewrites_the_manifest_to_them(tmp_path: Path) -> None:
    spec = manifest(tmp_path)
    scratch = Scratch(tmp_path / "scratch")
    plan = fetch(spec, str(tmp_path / "run"), "prepare", scratch)
    staged = parse_manifest(plan.manifest)
    copy = scratch.inputs / "model" / "model"  # inputs/<source>/<the source's own name>
    assert staged.spec.model.uri == str(copy)
    assert (copy / "variables" / "variables.index").read_bytes() == b"index"
    assert staged.spec.calibration.uri == str(scratch.inputs / "calibration" / "calibration.npz")
    assert plan.locations[str(copy)] == spec.spec.model.uri
    assert json.loads(scratch.plan_file.read_text())["phase"] == "prepare"


def test_fetch_refuses_a_link_in_a_local_model_directory(tmp_path: Path) -> None:
    spec = manifest(tmp_path)
    (tmp_path / "model" / "assets").mkdir()
    os.symlink("/etc/hostname", tmp_path / "model" / "assets" / "vocab.txt")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        fetch(spec, str(tmp_path / "run"), "prepare", Scratch(tmp_path / "scratch"))
    assert not (tmp_path / "scratch" / "inputs" / "model").exists()


def test_measure_fetches_what_prepare_published_but_not_its_own_earlier_records(tmp_path: Path) -> None:
    run = LocalStorage(tmp_path / "run")
    for key in ("stages/inspect.json", "stages/convert.json", "stages/benchmark@cpu.json", "stages/evaluate@gpu.json",
                "samples/inputs.npz", "variants/tflite-fp32/model.tflite", "results.json"):
        run.write_bytes(key, b"x")
    assert phase_inputs("measure", run) == ["samples/inputs.npz", "stages/convert.json", "stages/inspect.json",
                                            "variants/tflite-fp32/model.tflite"]
    assert phase_inputs("prepare", run) == []


def test_upload_publishes_the_declared_files_records_last_with_the_real_uris(tmp_path: Path) -> None:
    spec = manifest(tmp_path)
    scratch = Scratch(tmp_path / "scratch")
    run_dir = tmp_path / "run"
    LocalStorage(run_dir).write_bytes("samples/outputs.npz", b"stale")
    plan = fetch(spec, str(run_dir), "prepare", scratch)
    local_model = parse_manifest(plan.manifest).spec.model.uri
    executed(scratch, {"variants/tf-savedmodel/saved_model.pb": b"graph", "logs/inspect.log": b"W0000 noise",
                       "stages/inspect.json": record("inspect", message=f"loaded {local_model}"),
                       "undeclared.txt": b"x"}, deletes=("samples/outputs.npz",))
    declared = Declared.model_validate_json(scratch.declared_file.read_bytes())
    write_record(scratch.declared_file, declared.model_copy(update={"writes": declared.writes[:-1]}))
    assert upload(spec, str(run_dir), "prepare", scratch).status == "succeeded"
    published = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert published == ["logs/inspect.log", "stages/inspect.json", "variants/tf-savedmodel/saved_model.pb"]
    message = StageRecord.model_validate_json((run_dir / "stages" / "inspect.json").read_bytes()).message
    assert message == f"loaded {spec.spec.model.uri}"  # not the scratch copy's path


@pytest.mark.parametrize(("key", "why"), [
    ("../escaped.txt", "outside the run directory"),
    ("/etc/cron.d/job", "not a plain relative path"),
    ("variants/./x", "not a plain relative path"),
    ("stages/select.json", "another phase's stage record"),
    ("results.json", "only the finalize phase writes"),
    ("manifest.json", "only the finalize phase writes"),
    ("samples/inputs.npz", "one of its own inputs"),
])
def test_upload_refuses_a_bad_declaration_and_publishes_nothing(tmp_path: Path, key: str, why: str) -> None:
    spec = manifest(tmp_path)
    scratch = Scratch(tmp_path / "scratch")
    run_dir = tmp_path / "run"
    LocalStorage(run_dir).write_bytes("samples/inputs.npz", b"published by prepare")
    LocalStorage(run_dir).write_bytes("stages/inspect.json", record("inspect"))
    fetch(spec, str(run_dir), "measure", scratch, target="cpu")
    executed(scratch, {"stages/benchmark@cpu.json": record("benchmark", "cpu")})
    write_record(scratch.declared_file, Declared(writes=["stages/benchmark@cpu.json", key]))
    before = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    with pytest.raises(UnsafeModelError, match=why):
        upload(spec, str(run_dir), "measure", scratch, target="cpu")
    after = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert after == before and (run_dir / "samples" / "inputs.npz").read_bytes() == b"published by prepare"
    assert not (tmp_path / "escaped.txt").exists()


def test_upload_refuses_links_declared_as_files(tmp_path: Path) -> None:
    spec = manifest(tmp_path)
    scratch = Scratch(tmp_path / "scratch")
    fetch(spec, str(tmp_path / "run"), "prepare", scratch)
    executed(scratch, {"stages/inspect.json": record("inspect")})
    (scratch.run / "variants").mkdir()
    os.symlink("/etc/hostname", scratch.run / "variants" / "leak.txt")
    os.symlink("/etc", scratch.run / "host")
    for key in ("variants/leak.txt", "host/hostname"):
        write_record(scratch.declared_file, Declared(writes=["stages/inspect.json", key]))
        with pytest.raises(UnsafeModelError, match="symbolic link"):
            upload(spec, str(tmp_path / "run"), "prepare", scratch)
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").rglob("*.txt"))


def test_upload_without_a_result_is_a_failure_not_a_success(tmp_path: Path) -> None:
    spec = manifest(tmp_path)
    scratch = Scratch(tmp_path / "scratch")
    fetch(spec, str(tmp_path / "run"), "prepare", scratch)
    with pytest.raises(Exception, match="left no result"):
        upload(spec, str(tmp_path / "run"), "prepare", scratch)
