"""Content digests of stored objects, local files and directory trees."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path

from optismith.storage import Storage
from optismith.storage.base import sha256_file
from optismith.storage.local import LocalStorage


def tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted '<relative path> <file sha256>' lines: equal trees give equal digests,
    whatever order their files were listed or uploaded in."""
    digest = hashlib.sha256()
    for relative, file_digest in sorted(entries):
        digest.update(f"{relative} {file_digest}\n".encode())
    return digest.hexdigest()


def path_digest(path: Path) -> str:
    """sha256 of a file, or the tree digest of a directory."""
    if path.is_file():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return tree_digest((p.relative_to(path).as_posix(), sha256_file(p)) for p in files)


def stored_digest(store: Storage, key: str) -> tuple[str, int]:
    """(sha256, size) of one stored object; remote objects are streamed through a temporary file."""
    if isinstance(store, LocalStorage):
        path = store.local_path(key)
        return sha256_file(path), path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="optismith-digest-") as scratch:
        local = Path(scratch) / "object"
        store.download_file(key, local)
        return sha256_file(local), local.stat().st_size
