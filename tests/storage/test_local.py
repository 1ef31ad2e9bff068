"""LocalStorage: the shared contract, plus atomicity, permissions and symlinks on a real file system."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from optismith.errors import StorageError
from optismith.storage.local import LocalStorage
from tests.storage.storage_contract import StorageContract, assert_names


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "runs" / "r1")


class TestLocalContract(StorageContract):
    pass


def test_root_and_uri_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStorage("relative/dir")
    assert store.root == tmp_path / "relative" / "dir"
    assert store.uri == str(tmp_path / "relative" / "dir")
    assert store.local_path("a/b") == tmp_path / "relative" / "dir" / "a" / "b"


def test_write_into_a_read_only_directory_says_how_to_fix_it(read_only_dir: Path) -> None:
    store = LocalStorage(read_only_dir)
    with pytest.raises(StorageError) as caught:
        store.write_bytes("results.json", b"{}")
    assert_names(caught.value, "cannot write", str(read_only_dir / "results.json"), "writable")
    with pytest.raises(StorageError) as caught:
        store.write_bytes("stages/inspect.json", b"{}")
    assert_names(caught.value, "cannot create directory", str(read_only_dir / "stages"), "writable")
    assert list(read_only_dir.iterdir()) == []


def test_root_below_a_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    store = LocalStorage(tmp_path / "file" / "runs")
    with pytest.raises(StorageError) as caught:
        store.write_bytes("a.json", b"{}")
    assert_names(caught.value, str(tmp_path / "file"))


def test_symlink_leaving_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    store = LocalStorage(root)
    with pytest.raises(StorageError) as caught:
        store.read_bytes("link/secret")
    assert_names(caught.value, "escapes the storage root", "'link/secret'")
    with pytest.raises(StorageError):
        store.write_bytes("link/new", b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_directory_is_not_a_file(store: LocalStorage) -> None:
    store.write_bytes("model/saved_model.pb", b"pb")
    with pytest.raises(StorageError) as caught:
        store.read_bytes("model")
    assert_names(caught.value, "directory", str(store.root / "model"))
    with pytest.raises(StorageError):
        store.size("model")


def test_files_get_the_umask_mode_not_a_private_temp_mode(store: LocalStorage, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store.write_bytes("a.json", b"{}")
        store.upload_file("b.bin", _make(tmp_path / "src.bin", b"data"))
        store.download_file("a.json", tmp_path / "downloaded.json")
    finally:
        os.umask(old)
    for path in (store.root / "a.json", store.root / "b.bin", tmp_path / "downloaded.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(
    store: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_bytes("model.tflite", b"old model")

    def disk_full_half_way(source: Any, target: Any, length: int = 0) -> None:
        target.write(source.read(10))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("optismith.storage.local.shutil.copyfileobj", disk_full_half_way)
    with pytest.raises(StorageError) as caught:
        store.upload_file("model.tflite", _make(tmp_path / "new.tflite", b"new model, much longer" * 100))
    assert_names(caught.value, "No space left", "free some disk space")
    assert store.read_bytes("model.tflite") == b"old model"
    assert sorted(p.name for p in store.root.iterdir()) == ["model.tflite"]


def test_interrupted_write_keeps_the_old_file(
    store: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_bytes("report.html", b"old")

    def interrupted(source: Any, target: Any, length: int = 0) -> None:
        target.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("optismith.storage.local.shutil.copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.upload_file("report.html", _make(tmp_path / "new.html", b"new"))
    assert store.read_bytes("report.html") == b"old"
    assert store.list() == ["report.html"]


def test_concurrent_reader_never_sees_a_partial_file(store: LocalStorage) -> None:
    size = 4 << 20
    versions = [bytes([n]) * size for n in range(4)]
    store.write_bytes("model.bin", versions[0])
    stop = threading.Event()
    seen: set[bytes] = set()
    torn: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            data = store.read_bytes("model.bin")
            if len(data) != size or data.count(data[:1]) != size:
                torn.append(len(data))
            seen.add(data[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        n = 0
        while time.monotonic() < deadline:
            n += 1
            store.write_bytes("model.bin", versions[n % len(versions)])
    finally:
        stop.set()
        thread.join()
    assert torn == []
    assert len(seen) > 1, "the reader never observed a rewrite; the test proved nothing"


def test_listing_hides_in_flight_temporaries_only(store: LocalStorage) -> None:
    store.write_bytes("a.json", b"{}")
    (store.root / ".a.json.0123456789ab.part").write_bytes(b"half")
    (store.root / "notes.part").write_bytes(b"a real file that happens to end in .part")
    assert store.list() == ["a.json", "notes.part"]


def test_delete_of_an_undeletable_directory(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_bytes("dir/a", b"1")

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr("optismith.storage.local.shutil.rmtree", refuse)
    with pytest.raises(StorageError) as caught:
        store.delete("dir")
    assert_names(caught.value, "cannot delete", str(store.root / "dir"), "permissions")


def test_download_tree_refuses_keys_that_climb_out(tmp_path: Path) -> None:
    class HostileStorage(LocalStorage):
        """A store whose listing contains a key crafted to escape the download directory."""

        def list(self, prefix: str = "") -> list[str]:
            return [f"{prefix}../../escaped"]

    target = tmp_path / "deep" / "download"
    with pytest.raises(StorageError) as caught:
        HostileStorage(tmp_path / "store").download_tree("model", target)
    assert_names(caught.value, "outside", "'model/../../escaped'")
    assert not (tmp_path / "escaped").exists()
    assert not target.exists()


def test_copy_source_unchanged(store: LocalStorage, tmp_path: Path) -> None:
    """upload_file copies: the caller's scratch file stays where it was."""
    source = _make(tmp_path / "scratch" / "m.bin", b"m")
    store.upload_file("m.bin", source)
    shutil.rmtree(tmp_path / "scratch")
    assert store.read_bytes("m.bin") == b"m"


def _make(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
