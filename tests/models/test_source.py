"""Bringing a model to a local path: local paths in place, remote files/prefixes/archives downloaded,
sizes checked before downloading."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from optismith.errors import ModelFormatError, StorageError, UnsafeArchiveError
from optismith.models.source import fetch_into, materialize, split_uri
from optismith.spec import LimitsSpec, ModelSource, StorageSpec
from optismith.storage import open_storage
from optismith.storage.local import LocalStorage


def _saved_model_dir(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"p" * 100)
    (root / "variables" / "variables.index").write_bytes(b"i" * 50)
    return root


def _tar_gz(directory: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(directory, arcname="model")
    return dest


def _materialize(uri: str, dest: Path, **limits: str | int) -> Path:
    return materialize(ModelSource(uri=uri), StorageSpec(), LimitsSpec(**limits), dest)


def test_local_directory_is_used_in_place(tmp_path: Path) -> None:
    model = _saved_model_dir(tmp_path / "model")
    assert _materialize(str(model), tmp_path / "dest") == model
    assert _materialize(f"file://{model}", tmp_path / "dest") == model
    assert not (tmp_path / "dest").exists()


def test_local_archive_is_unpacked(tmp_path: Path) -> None:
    archive = _tar_gz(_saved_model_dir(tmp_path / "model"), tmp_path / "model.tar.gz")
    root = _materialize(str(archive), tmp_path / "dest")
    assert root == tmp_path / "dest" / "unpacked" / "model"
    assert (root / "saved_model.pb").read_bytes() == b"p" * 100


def test_missing_local_model_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file") as caught:
        _materialize(str(tmp_path / "nope"), tmp_path / "dest")
    assert "spec.model.uri" in caught.value.fix


def test_oversized_model_is_refused(tmp_path: Path) -> None:
    model = _saved_model_dir(tmp_path / "model")
    with pytest.raises(ModelFormatError, match=r"150 bytes, over spec.limits.maxModelSize \(100 bytes\)"):
        _materialize(str(model), tmp_path / "dest", max_model_size="100")


def test_oversized_archive_is_refused_before_unpacking(tmp_path: Path) -> None:
    archive = _tar_gz(_saved_model_dir(tmp_path / "model"), tmp_path / "model.tar.gz")
    with pytest.raises(UnsafeArchiveError, match="maxModelSize"):
        _materialize(str(archive), tmp_path / "dest", max_model_size="10")
    assert not (tmp_path / "dest").exists()


def test_archive_caps_apply_to_remote_and_local_archives(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("zeros", bytes(1 << 20))
    with pytest.raises(UnsafeArchiveError, match="maxExpandedSize"):
        _materialize(str(archive), tmp_path / "dest", max_expanded_size="64k")


def test_split_uri() -> None:
    assert split_uri("s3://bucket/models/m.zip") == ("s3://bucket/models", "m.zip")
    assert split_uri("s3://bucket/models/dir/") == ("s3://bucket/models", "dir")
    assert split_uri("s3://bucket") == ("s3://bucket", "")


# --- the download path, through the Storage interface ---------------------------------------------


def test_fetch_one_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "remote")
    store.write_bytes("m.keras", b"k" * 10)
    path = fetch_into(store, "m.keras", tmp_path / "dest", max_size=100)
    assert path == tmp_path / "dest" / "m.keras" and path.read_bytes() == b"k" * 10


def test_fetch_a_prefix_as_a_directory(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "remote")
    store.write_bytes("model/saved_model.pb", b"p")
    store.write_bytes("model/variables/variables.index", b"i")
    path = fetch_into(store, "model", tmp_path / "dest", max_size=100)
    assert (path / "saved_model.pb").read_bytes() == b"p"
    assert (path / "variables" / "variables.index").read_bytes() == b"i"


def test_fetch_refuses_oversized_objects_before_downloading(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "remote")
    store.write_bytes("model/a", b"a" * 60)
    store.write_bytes("model/b", b"b" * 60)
    store.write_bytes("m.zip", b"z" * 200)
    with pytest.raises(ModelFormatError, match="maxModelSize"):
        fetch_into(store, "model", tmp_path / "dest", max_size=100)
    with pytest.raises(UnsafeArchiveError, match="maxModelSize"):
        fetch_into(store, "m.zip", tmp_path / "dest", max_size=100)
    assert not (tmp_path / "dest").exists()


def test_fetch_missing_object_raises_the_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        fetch_into(LocalStorage(tmp_path / "remote"), "missing.pb", tmp_path / "dest", max_size=100)


@pytest.mark.s3
def test_materialize_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    store = open_storage(f"s3://{s3_bucket}")
    archive = _tar_gz(_saved_model_dir(tmp_path / "model"), tmp_path / "model.tar.gz")
    store.upload_file("models/model.tar.gz", archive)
    store.upload_tree("models/plain", tmp_path / "model")

    unpacked = _materialize(f"s3://{s3_bucket}/models/model.tar.gz", tmp_path / "a")
    assert (unpacked / "saved_model.pb").read_bytes() == b"p" * 100
    prefix = _materialize(f"s3://{s3_bucket}/models/plain", tmp_path / "b")
    assert (prefix / "variables" / "variables.index").read_bytes() == b"i" * 50
    with pytest.raises(StorageError):
        _materialize(f"s3://{s3_bucket}/models/missing.tar.gz", tmp_path / "c")
    with pytest.raises(UnsafeArchiveError, match="maxModelSize"):
        _materialize(f"s3://{s3_bucket}/models/model.tar.gz", tmp_path / "d", max_model_size="16")
