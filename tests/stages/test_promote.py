"""Promotion: serving layouts per format, promotion.json last and only forward in generations, retention,
and the checks before anything is written (sealed run, overlapping URIs)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

import optismith.stages.promote as promote_module
from optismith.errors import StorageError
from optismith.results import PromotionManifest
from optismith.runs.layout import PROMOTION as PROMOTION_KEY
from optismith.runs.manifest import tree_digest
from optismith.stages.promote import PromoteStage
from optismith.storage.local import LocalStorage
from tests.stages.promotion_runs import sealed_run


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def record_at(destination: Path) -> PromotionManifest:
    return PromotionManifest.model_validate_json((destination / PROMOTION_KEY).read_bytes())


def test_a_tflite_winner_gets_tf_serving_and_kserve_layouts(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    record = PromoteStage().run(sealed_run(tmp_path, str(destination), generation=3))
    digest = hashlib.sha256(b"TFL3 stand-in").hexdigest()
    assert record.payload["promoted"] is True and record.payload["digest"] == f"sha256:{digest}"
    assert (record.payload["version"], record.payload["runtime"], record.payload["format"]) == (3, "tflite", "tflite")
    assert record.payload["storage_uri"] == f"{destination}/kserve"
    assert files_under(destination).keys() == {"promotion.json", "tfserving/digits/3/model.tflite",
                                               "kserve/3/model.tflite"}
    promoted = record_at(destination)
    assert (promoted.version, promoted.runtime, promoted.format, promoted.digest) == (3, "tflite", "tflite",
                                                                                     f"sha256:{digest}")
    assert promoted.artifact == "tfserving/digits/3/model.tflite"
    assert set(promoted.servers) == {"tfserving", "kserve"} and promoted.servers["tfserving"].path == "tfserving/digits"
    assert "--prefer_tflite_model" in promoted.servers["tfserving"].note
    assert (promoted.name, promoted.namespace, promoted.generation, promoted.uid) == ("digits", "ml", 3, "uid-1")
    assert promoted.metrics["latency_p50_ms"] == 1.0 and promoted.metrics["batch_size"] == 1.0


def test_a_savedmodel_winner_gets_triton_tf_serving_and_kserve_layouts(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    record = PromoteStage().run(sealed_run(tmp_path, str(destination), winner="tf-savedmodel", generation=1))
    expected = tree_digest([("saved_model.pb", hashlib.sha256(b"graph").hexdigest()),
                            ("variables/variables.index", hashlib.sha256(b"index").hexdigest())])
    assert record.payload["digest"] == f"sha256:{expected}"
    files = files_under(destination)
    for version_dir in ("triton/digits/1/model.savedmodel", "tfserving/digits/1", "kserve/1"):
        assert files[f"{version_dir}/saved_model.pb"] == b"graph"
        assert files[f"{version_dir}/variables/variables.index"] == b"index"
    config = files["triton/digits/config.pbtxt"].decode()
    assert 'name: "digits"' in config and 'platform: "tensorflow_savedmodel"' in config
    promoted = record_at(destination)
    assert promoted.servers["kserve"].model_format == "tensorflow"


def test_an_onnx_winner_gets_a_triton_repository_and_a_kserve_copy_of_it(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path, str(destination), winner="onnx-fp32", generation=2))
    files = files_under(destination)
    assert files["triton/digits/2/model.onnx"] == files["kserve/digits/2/model.onnx"] == b"onnx stand-in"
    assert files["triton/digits/config.pbtxt"] == files["kserve/digits/config.pbtxt"]
    assert b'platform: "onnxruntime_onnx"' in files["triton/digits/config.pbtxt"]
    assert not [k for k in files if k.startswith("tfserving/")]
    assert record_at(destination).servers["kserve"].model_format == "onnx"


def test_a_graphdef_winner_gets_a_triton_config_with_its_tensors(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path, str(destination), winner="tf-frozen", model_name="mnist"))
    files = files_under(destination)
    assert files["triton/mnist/3/model.graphdef"] == b"graphdef stand-in" and "triton/mnist/3/io.json" in files
    config = files["triton/mnist/config.pbtxt"].decode()
    assert 'platform: "tensorflow_graphdef"' in config
    assert '{ name: "x" data_type: TYPE_FP32 dims: [ -1, 8, 8, 1 ] }' in config
    assert '{ name: "Identity" data_type: TYPE_FP32 dims: [ -1, 10 ] }' in config


def test_versions_beyond_keep_versions_are_deleted_and_kserve_holds_only_the_current(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    for generation in (1, 2, 3, 4):
        run = sealed_run(tmp_path / f"g{generation}", str(destination), generation=generation, keep_versions=2)
        assert PromoteStage().run(run).payload["promoted"] is True
    files = files_under(destination)
    assert sorted(k for k in files if k.startswith("tfserving/")) == ["tfserving/digits/3/model.tflite",
                                                                     "tfserving/digits/4/model.tflite"]
    assert sorted(k for k in files if k.startswith("kserve/")) == ["kserve/4/model.tflite"]
    assert [v.version for v in record_at(destination).retained] == [4, 3]


def test_a_format_change_keeps_older_versions_where_they_were(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "a", str(destination), winner="tf-savedmodel", generation=1))
    PromoteStage().run(sealed_run(tmp_path / "b", str(destination), winner="onnx-fp32", generation=2))
    files = files_under(destination)
    assert "triton/digits/2/model.onnx" in files and "triton/digits/1/model.savedmodel/saved_model.pb" in files
    assert b"onnxruntime_onnx" in files["triton/digits/config.pbtxt"]
    assert "tfserving/digits/1/saved_model.pb" in files  # TF Serving keeps serving the last SavedModel
    # The KServe prefix is the current model only: the SavedModel's TF Serving layout is gone from it.
    assert sorted(k for k in files if k.startswith("kserve/")) == ["kserve/digits/2/model.onnx",
                                                                  "kserve/digits/config.pbtxt"]


def test_an_older_generation_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "new", str(destination), generation=5))
    before = files_under(destination)
    record = PromoteStage().run(sealed_run(tmp_path / "old", str(destination), generation=4, winner="onnx-fp32"))
    assert record.payload["promoted"] is False
    assert "generation 5 is already promoted" in record.payload["reason"] and "generation 4" in record.payload["reason"]
    assert files_under(destination) == before


def test_promoting_the_same_generation_again_is_harmless(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    run = sealed_run(tmp_path, str(destination), generation=2)
    PromoteStage().run(run)
    again = PromoteStage().run(run)
    assert again.payload["promoted"] is True and again.payload["version"] == 2
    assert [v.version for v in record_at(destination).retained] == [2]


def test_a_recreated_resource_continues_after_the_highest_version(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "a", str(destination), generation=7, uid="first"))
    record = PromoteStage().run(sealed_run(tmp_path / "b", str(destination), generation=1, uid="second"))
    assert record.payload["version"] == 8  # servers load the highest version: it must be the new one
    PromoteStage().run(sealed_run(tmp_path / "c", str(destination), generation=2, uid="second"))
    assert record_at(destination).version == 9


def test_another_resources_promotion_is_not_replaced(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "a", str(destination), name="resnet"))
    record = PromoteStage().run(sealed_run(tmp_path / "b", str(destination), name="digits"))
    assert record.payload["promoted"] is False and "ml/resnet" in record.payload["reason"]
    assert record_at(destination).name == "resnet"


def test_concurrent_local_promotions_end_on_the_newer_generation(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    for round_ in range(5):
        runs = [sealed_run(tmp_path / f"r{round_}-g{g}", str(destination), generation=10 * round_ + g,
                           winner="tf-savedmodel") for g in (1, 2)]
        threads = [threading.Thread(target=PromoteStage().run, args=(run,)) for run in reversed(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert record_at(destination).generation == 10 * round_ + 2
        assert (destination / "tfserving" / "digits" / str(10 * round_ + 2) / "saved_model.pb").is_file()


def test_a_failed_gate_leaves_the_previous_promotion_untouched(tmp_path: Path) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "first", str(destination), generation=1))
    before = files_under(destination)
    record = PromoteStage().run(sealed_run(tmp_path / "second", str(destination), winner=None, generation=2))
    assert record.payload == {"promoted": False,
                              "reason": "no variant passed the gates (2 candidate(s): 2 are too slow)"}
    assert "left untouched" in record.message
    assert files_under(destination) == before


def test_nothing_is_promoted_without_a_promotion_uri_or_a_sealed_run(tmp_path: Path) -> None:
    record = PromoteStage().run(sealed_run(tmp_path / "a", None))
    assert record.payload == {"promoted": False, "reason": "spec.promotion is not set"}
    ctx = sealed_run(tmp_path / "b", str(tmp_path / "promoted"))
    ctx.store.delete("manifest.json")
    record = PromoteStage().run(ctx)
    assert record.payload["promoted"] is False and "incomplete" in record.payload["reason"]
    assert not (tmp_path / "promoted").exists()


@pytest.mark.parametrize(("key", "data"), [("variants/tflite-fp32/model.tflite", b"swapped"),
                                           ("results.json", b'{"tampered": true}'),
                                           ("variants/extra/planted.bin", b"not sealed")])
def test_a_run_that_does_not_verify_is_not_promoted(tmp_path: Path, key: str, data: bytes) -> None:
    ctx = sealed_run(tmp_path, str(tmp_path / "promoted"))
    ctx.store.write_bytes(key, data)
    record = PromoteStage().run(ctx)
    assert record.payload["promoted"] is False
    assert "does not verify" in record.payload["reason"] and key in record.payload["reason"]
    assert not (tmp_path / "promoted").exists()


def test_a_promotion_uri_that_resolves_into_the_output_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "out")  # the spec's textual check cannot see through it
    record = PromoteStage().run(sealed_run(tmp_path, str(tmp_path / "alias" / "promoted")))
    assert record.payload["promoted"] is False and "overlaps output.uri" in record.payload["reason"]
    assert not list((tmp_path / "out").iterdir())


def test_a_promotion_uri_holding_another_run_directory_is_refused(tmp_path: Path) -> None:
    other = sealed_run(tmp_path / "other", None)  # another resource's sealed run, elsewhere
    record = PromoteStage().run(sealed_run(tmp_path / "mine", other.store.uri))
    assert record.payload["promoted"] is False and "holds a run directory" in record.payload["reason"]
    assert not (Path(other.store.uri) / "promotion.json").exists()


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
        if self.fail_upload is not None and len(self.writes) == self.fail_upload:
            raise StorageError("connection reset", where=key)
        self.writes.append(key)
        super().upload_file(key, path)


def test_promotion_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = RecordingStorage(tmp_path / "promoted")
    monkeypatch.setattr(promote_module, "open_storage", lambda uri, settings=None: storage)
    PromoteStage().run(sealed_run(tmp_path, "s3://bucket/promoted", winner="tf-savedmodel"))
    assert storage.writes[-1] == PROMOTION_KEY and storage.writes.count(PROMOTION_KEY) == 1
    assert len(storage.writes) == 1 + 3 * 2 + 1  # 2 files in each of 3 layouts, config.pbtxt, the record


def test_a_failed_upload_leaves_the_previous_promotion_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "promoted"
    PromoteStage().run(sealed_run(tmp_path / "first", str(destination), generation=1))
    previous = (destination / PROMOTION_KEY).read_bytes()
    storage = RecordingStorage(destination, fail_upload=3)
    monkeypatch.setattr(promote_module, "open_storage", lambda uri, settings=None: storage)
    with pytest.raises(StorageError):
        PromoteStage().run(sealed_run(tmp_path / "second", str(destination), winner="tf-savedmodel", generation=2))
    assert (destination / PROMOTION_KEY).read_bytes() == previous
    assert PROMOTION_KEY not in storage.writes
