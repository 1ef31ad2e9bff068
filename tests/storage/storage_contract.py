"""Behaviour every Storage must have; test_local.py and test_s3.py run it against their backend.

Subclasses provide a `store` fixture: an empty Storage rooted at a prefix.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from optismith.errors import StorageError
from optismith.storage import Storage


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".part"))


def assert_names(error: StorageError, *fragments: str) -> None:
    text = str(error)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} missing from: {text}"
    assert error.fix, f"no fix in: {text}"
    assert "Fix:" in text


class StorageContract:
    # --- bytes and files ---

    def test_bytes_round_trip_and_overwrite(self, store: Storage) -> None:
        store.write_bytes("stages/inspect.json", b'{"ok": true}')
        assert store.read_bytes("stages/inspect.json") == b'{"ok": true}'
        store.write_bytes("stages/inspect.json", b"second")
        assert store.read_bytes("stages/inspect.json") == b"second"
        assert store.size("stages/inspect.json") == 6

    def test_empty_object(self, store: Storage) -> None:
        store.write_bytes("empty", b"")
        assert store.read_bytes("empty") == b""
        assert store.size("empty") == 0
        assert store.exists("empty")

    def test_file_round_trip_creates_parents_and_leaves_no_temporaries(self, store: Storage, tmp_path: Path) -> None:
        source = tmp_path / "model.tflite"
        payload = os.urandom(300_000)
        source.write_bytes(payload)
        store.upload_file("variants/tflite-fp32/model.tflite", source)
        target = tmp_path / "out" / "deep" / "copy.tflite"
        store.download_file("variants/tflite-fp32/model.tflite", target)
        assert target.read_bytes() == payload
        assert store.size("variants/tflite-fp32/model.tflite") == len(payload)
        assert _leftovers(tmp_path) == []
        assert store.list() == ["variants/tflite-fp32/model.tflite"]

    def test_download_replaces_an_existing_file(self, store: Storage, tmp_path: Path) -> None:
        store.write_bytes("a.bin", b"new contents")
        target = tmp_path / "a.bin"
        target.write_bytes(b"old contents that are longer")
        store.download_file("a.bin", target)
        assert target.read_bytes() == b"new contents"

    def test_tree_round_trip(self, store: Storage, tmp_path: Path) -> None:
        source = tmp_path / "saved_model"
        (source / "variables").mkdir(parents=True)
        (source / "saved_model.pb").write_bytes(b"graph")
        (source / "variables" / "variables.index").write_bytes(b"index")
        (source / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(1000))
        uploaded = store.upload_tree("variants/tf-savedmodel/model", source)
        assert uploaded == [
            "variants/tf-savedmodel/model/saved_model.pb",
            "variants/tf-savedmodel/model/variables/variables.data-00000-of-00001",
            "variants/tf-savedmodel/model/variables/variables.index",
        ]
        assert store.is_prefix("variants/tf-savedmodel/model")
        assert not store.is_prefix("variants/tf-savedmodel/model/saved_model.pb")
        copy = tmp_path / "copy"
        written = store.download_tree("variants/tf-savedmodel/model", copy)
        assert sorted(p.relative_to(copy).as_posix() for p in written) == sorted(_tree(source))
        assert _tree(copy) == _tree(source)

    def test_tree_at_the_root(self, store: Storage, tmp_path: Path) -> None:
        source = tmp_path / "src"
        (source / "d").mkdir(parents=True)
        (source / "top.txt").write_bytes(b"1")
        (source / "d" / "inner.txt").write_bytes(b"2")
        assert store.upload_tree("", source) == ["d/inner.txt", "top.txt"]
        store.download_tree("", tmp_path / "copy")
        assert _tree(tmp_path / "copy") == _tree(source)

    # --- listing and lookups ---

    def test_list_uses_path_semantics(self, store: Storage) -> None:
        for key in ("model/saved_model.pb", "model/variables/v.index", "model2/x", "model.json", "other"):
            store.write_bytes(key, key.encode())
        assert store.list() == ["model.json", "model/saved_model.pb", "model/variables/v.index", "model2/x", "other"]
        assert store.list("model") == ["model/saved_model.pb", "model/variables/v.index"]
        assert store.list("model/") == ["model/saved_model.pb", "model/variables/v.index"]
        assert store.list("model/variables") == ["model/variables/v.index"]
        assert store.list("model.json") == ["model.json"]
        assert store.list("model.json/") == []
        assert store.list("missing") == []

    def test_exists_for_objects_and_prefixes(self, store: Storage) -> None:
        store.write_bytes("runs/r1/results.json", b"{}")
        assert store.exists("runs/r1/results.json")
        assert store.exists("runs/r1")
        assert store.exists("runs")
        assert not store.exists("runs/r2")
        assert not store.exists("runs/r1/results")

    def test_equivalent_spellings_name_the_same_key(self, store: Storage) -> None:
        store.write_bytes("a//b/./c.txt", b"x")
        assert store.list() == ["a/b/c.txt"]
        assert store.read_bytes("/a/b/c.txt") == b"x"
        assert store.exists("a/b/c.txt/")

    def test_delete_object_prefix_and_missing(self, store: Storage) -> None:
        for key in ("keep.txt", "gone.txt", "dir/a", "dir/sub/b", "dir2/c"):
            store.write_bytes(key, b"1")
        store.delete("gone.txt")
        assert not store.exists("gone.txt")
        store.delete("dir")
        assert store.list() == ["dir2/c", "keep.txt"]
        store.delete("never-existed")
        store.delete("dir")
        assert store.list() == ["dir2/c", "keep.txt"]

    def test_child_is_a_view_of_a_prefix(self, store: Storage) -> None:
        child = store.child("runs/r1")
        assert child.uri == store.key_uri("runs/r1")
        child.write_bytes("stages/a.json", b"a")
        grandchild = child.child("stages")
        assert grandchild.read_bytes("a.json") == b"a"
        assert grandchild.list() == ["a.json"]
        assert store.list() == ["runs/r1/stages/a.json"]
        assert child.list() == ["stages/a.json"]
        assert child.key_uri("stages/a.json") == store.key_uri("runs/r1/stages/a.json")

    def test_sibling_prefixes_do_not_leak(self, store: Storage) -> None:
        store.write_bytes("run1/a", b"1")
        store.write_bytes("run10/b", b"2")
        assert store.child("run1").list() == ["a"]
        assert store.child("run10").list() == ["b"]

    # --- errors ---

    def test_missing_object_names_the_key_and_a_fix(self, store: Storage, tmp_path: Path) -> None:
        for operation in (
            lambda: store.read_bytes("stages/nope.json"),
            lambda: store.size("stages/nope.json"),
            lambda: store.download_file("stages/nope.json", tmp_path / "nope.json"),
        ):
            with pytest.raises(StorageError) as caught:
                operation()
            assert_names(caught.value, "stages/nope.json")
            assert caught.value.exit_code == 5
        assert not (tmp_path / "nope.json").exists()
        assert _leftovers(tmp_path) == []

    @pytest.mark.parametrize("key", ["../outside", "a/../../outside", "a/../b", "..", "a\0b"])
    def test_keys_cannot_escape_the_root(self, store: Storage, key: str) -> None:
        for operation in (
            lambda: store.write_bytes(key, b"x"),
            lambda: store.read_bytes(key),
            lambda: store.exists(key),
            lambda: store.list(key),
            lambda: store.child(key),
            lambda: store.delete(key),
        ):
            with pytest.raises(StorageError) as caught:
                operation()
            assert_names(caught.value, repr(key))
        assert store.list() == []

    def test_upload_of_a_missing_local_file(self, store: Storage, tmp_path: Path) -> None:
        with pytest.raises(StorageError) as caught:
            store.upload_file("x", tmp_path / "not-there.bin")
        assert_names(caught.value, "no such local file", "not-there.bin")
        assert not store.exists("x")

    def test_download_into_a_read_only_directory(self, store: Storage, read_only_dir: Path) -> None:
        store.write_bytes("model.onnx", b"onnx")
        for target in (read_only_dir / "model.onnx", read_only_dir / "sub" / "model.onnx"):
            with pytest.raises(StorageError) as caught:
                store.download_file("model.onnx", target)
            assert_names(caught.value, str(read_only_dir), "writable")
        assert list(read_only_dir.iterdir()) == []

    def test_download_below_a_file(self, store: Storage, tmp_path: Path) -> None:
        store.write_bytes("model.onnx", b"onnx")
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"a file, not a directory")
        with pytest.raises(StorageError) as caught:
            store.download_file("model.onnx", blocker / "model.onnx")
        assert_names(caught.value, str(blocker))

    def test_compare_and_swap(self, store: Storage) -> None:
        assert store.read_versioned("record.json") is None
        assert store.write_if("record.json", b"1", None)
        assert not store.write_if("record.json", b"other", None)  # it exists now
        found = store.read_versioned("record.json")
        assert found is not None and found[0] == b"1"
        assert store.write_if("record.json", b"2", found[1])
        assert not store.write_if("record.json", b"3", found[1])  # the token is stale
        assert store.read_bytes("record.json") == b"2"

    def test_concurrent_swaps_from_one_token_let_exactly_one_win(self, store: Storage) -> None:
        store.write_if("record.json", b"start", None)
        found = store.read_versioned("record.json")
        assert found is not None
        writers = 6
        barrier, wins = threading.Barrier(writers), []

        def swap(index: int) -> None:
            barrier.wait()
            if store.write_if("record.json", f"writer {index}".encode(), found[1]):
                wins.append(index)

        threads = [threading.Thread(target=swap, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1, wins
        assert store.read_bytes("record.json") == f"writer {wins[0]}".encode()
