"""Promotion: the winner's artifact first under a content-addressed key, promotion.json last; refused
or failed promotions leave the previous one untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import optismith.stages.promote as promote_module
from optismith.errors import StorageError
from optismith.results import Candidate, PromotionManifest, Selection, StageRecord
from optismith.runs.layout import PROMOTION as PROMOTION_KEY
from optismith.runs.layout import stage_record
from optismith.runs.manifest import artifact_digest, artifact_files, tree_digest, write_manifest
from optismith.runs.stage import StageContext
from optismith.stages.promote import PromoteStage
from optismith.storage.local import LocalStorage
from tests.stages.fake_runtimes import fake_variant, make_run, manifest, store_record


def _candidate(variant: str, passed: bool) -> Candidate:
    return Candidate(
        variant=variant,
        target="cpu",
        objective_value=1.0,
        latency_p50_ms=1.0,
        latency_p99_ms=1.5,
        throughput_per_s=1000.0,
        size_bytes=123,
        accuracy_drop=0.001,
        speedup=2.5,
        passed=passed,
        reasons=[] if passed else ["accuracy drop 5.00% exceeds maxAccuracyDrop 1%"],
    )


def sealed_run(
    tmp_path: Path, promotion: str | None, *, winner: str | None = "tflite-fp32", saved_model_winner: bool = False
) -> StageContext:
    """A finished run whose select stage chose `winner` (None: no variant passed), sealed by a manifest."""
    ctx = make_run(
        tmp_path,
        [fake_variant("tf-savedmodel"), fake_variant("tflite-fp32")],
        model=manifest(tmp_path, promotion=promotion),
        target=None,
    )
    if saved_model_winner:
        # A directory artifact, like a SavedModel.
        ctx.store.write_bytes("variants/tf-savedmodel/saved_model/saved_model.pb", b"graph")
        ctx.store.write_bytes("variants/tf-savedmodel/saved_model/variables/variables.index", b"index")
        inspect = StageRecord.model_validate_json(ctx.store.read_bytes(stage_record("inspect")))
        inspect.variants[0].artifact = "variants/tf-savedmodel/saved_model"
        ctx.store.write_bytes(stage_record("inspect"), inspect.model_dump_json().encode())
    candidates = [
        _candidate("tflite-fp32", winner == "tflite-fp32"),
        _candidate("tf-savedmodel", winner == "tf-savedmodel"),
    ]
    selection = Selection(
        objective="latencyP50",
        batch_size=1,
        winner=winner,
        winner_target="cpu" if winner else None,
        outcome="selected" if winner else "no-variant-passed",
        message="picked" if winner else "no variant passed the gates (2 candidate(s): 2 are too slow)",
        candidates=candidates,
    )
    store_record(
        ctx,
        StageRecord(
            stage="select",
            status="succeeded",
            started_at="",
            finished_at="",
            duration_seconds=0.1,
            payload={"selection": selection.model_dump(mode="json")},
        ),
    )
    ctx.store.write_bytes("results.json", b"{}")
    write_manifest(ctx.store)
    return ctx


def test_the_winner_is_promoted_under_its_digest(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    ctx = sealed_run(tmp_path, str(destination))
    record = PromoteStage().run(ctx)
    artifact = ctx.fetch("variants/tflite-fp32/model.json").read_bytes()
    digest = hashlib.sha256(artifact).hexdigest()
    assert record.payload["promoted"] is True
    assert record.payload["digest"] == f"sha256:{digest}" and record.payload["variant"] == "tflite-fp32"
    assert record.payload["uri"] == str(destination)
    promoted = PromotionManifest.model_validate_json((destination / PROMOTION_KEY).read_bytes())
    assert promoted.artifact == f"artifacts/{digest}/model.json"
    assert (destination / promoted.artifact).read_bytes() == artifact
    assert (promoted.variant, promoted.target, promoted.digest) == ("tflite-fp32", "cpu", f"sha256:{digest}")
    assert (promoted.name, promoted.namespace, promoted.generation) == ("digits", "ml", 3)
    assert promoted.run_uri == ctx.store.uri and promoted.source_uri == ctx.spec.model.uri
    assert promoted.metrics["latency_p50_ms"] == 1.0 and promoted.metrics["speedup"] == 2.5


def test_directory_artifacts_get_a_tree_digest(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    ctx = sealed_run(tmp_path, str(destination), winner="tf-savedmodel", saved_model_winner=True)
    record = PromoteStage().run(ctx)
    expected = tree_digest(
        [
            ("saved_model.pb", hashlib.sha256(b"graph").hexdigest()),
            ("variables/variables.index", hashlib.sha256(b"index").hexdigest()),
        ]
    )
    assert record.payload["digest"] == f"sha256:{expected}"
    copied = destination / "artifacts" / expected / "saved_model"
    assert (copied / "saved_model.pb").read_bytes() == b"graph"
    assert (copied / "variables" / "variables.index").read_bytes() == b"index"


def test_tree_digests_depend_on_content_and_names_not_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for root, order in ((first, ["x", "y/z"]), (second, ["y/z", "x"])):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(name.encode())
    assert artifact_digest(artifact_files(first)) == artifact_digest(artifact_files(second))
    (second / "x").write_bytes(b"changed")
    assert artifact_digest(artifact_files(first)) != artifact_digest(artifact_files(second))
    (tmp_path / "file").write_bytes(b"abc")
    assert artifact_digest(artifact_files(tmp_path / "file")) == hashlib.sha256(b"abc").hexdigest()


def test_a_failed_gate_leaves_the_previous_promotion_untouched(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "first", str(destination)))
    before = {p: p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    record = PromoteStage().run(sealed_run(tmp_path / "second", str(destination), winner=None))
    assert record.payload == {
        "promoted": False,
        "reason": "no variant passed the gates (2 candidate(s): 2 are too slow)",
    }
    assert "left untouched" in record.message
    assert {p: p.read_bytes() for p in destination.rglob("*") if p.is_file()} == before


def test_nothing_is_promoted_without_a_promotion_uri_or_a_sealed_run(tmp_path: Path) -> None:
    record = PromoteStage().run(sealed_run(tmp_path / "a", None))
    assert record.payload == {"promoted": False, "reason": "spec.promotion is not set"}
    ctx = sealed_run(tmp_path / "b", str(tmp_path / "promoted"))
    ctx.store.delete("manifest.json")
    record = PromoteStage().run(ctx)
    assert record.payload["promoted"] is False and "incomplete" in record.payload["reason"]
    assert not (tmp_path / "promoted").exists()


def test_an_artifact_that_changed_after_sealing_is_not_promoted(tmp_path: Path) -> None:
    ctx = sealed_run(tmp_path, str(tmp_path / "promoted"))
    ctx.store.write_bytes("variants/tflite-fp32/model.json", b'{"units": {"1": 99}}')
    record = PromoteStage().run(ctx)
    assert record.payload["promoted"] is False
    assert "variants/tflite-fp32/model.json" in record.payload["reason"]
    assert not (tmp_path / "promoted").exists()


class RecordingStorage(LocalStorage):
    """Logs every write; optionally fails the n-th file upload like a dropped connection."""

    def __init__(self, root: Path, fail_upload: int | None = None) -> None:
        super().__init__(root)
        self.writes: list[str] = []
        self.fail_upload = fail_upload

    def write_bytes(self, key: str, data: bytes) -> None:
        self.writes.append(key)
        super().write_bytes(key, data)

    def upload_file(self, key: str, path: Path) -> None:
        uploads = sum(1 for k in self.writes if k.startswith("artifacts/"))
        if self.fail_upload is not None and uploads == self.fail_upload:
            raise StorageError("connection reset", where=key)
        self.writes.append(key)
        super().upload_file(key, path)


def test_promotion_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = RecordingStorage(tmp_path / "promoted")
    monkeypatch.setattr(promote_module, "open_storage", lambda uri, settings=None: storage)
    PromoteStage().run(sealed_run(tmp_path, "s3://bucket/promoted", winner="tf-savedmodel", saved_model_winner=True))
    assert storage.writes[-1] == PROMOTION_KEY
    assert storage.writes.count(PROMOTION_KEY) == 1
    assert len([k for k in storage.writes if k.startswith("artifacts/")]) == 2


def test_a_failed_upload_leaves_the_previous_promotion_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "first", str(destination)))
    previous = (destination / PROMOTION_KEY).read_bytes()
    storage = RecordingStorage(destination, fail_upload=1)  # the second file of the SavedModel fails
    monkeypatch.setattr(promote_module, "open_storage", lambda uri, settings=None: storage)
    with pytest.raises(StorageError):
        PromoteStage().run(
            sealed_run(tmp_path / "second", str(destination), winner="tf-savedmodel", saved_model_winner=True)
        )
    assert (destination / PROMOTION_KEY).read_bytes() == previous
    assert PROMOTION_KEY not in storage.writes
