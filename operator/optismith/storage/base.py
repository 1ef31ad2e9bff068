"""The storage interface every stage uses; keys are '/'-separated and relative to the storage's root."""

from __future__ import annotations

import builtins
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from optismith.errors import StorageError


def join_uri(base: str, *parts: str) -> str:
    result = base.rstrip("/")
    for part in parts:
        stripped = part.strip("/")
        if stripped:
            result = f"{result}/{stripped}"
    return result


def normalize_key(key: str, where: str) -> str:
    """'a//b/./c/' -> 'a/b/c'. Keys stay inside their root: '..' and NUL are refused rather than
    resolved, because a key that climbs out of a run directory is a bug or an attack, never intended."""
    if "\0" in key:
        raise StorageError(f"key {key!r} contains a NUL byte", where=where, fix="use printable key names")
    parts = [part for part in key.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise StorageError(f"key {key!r} escapes the storage root", where=where,
                           fix="use keys relative to the root without '..'")
    return "/".join(parts)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Storage(ABC):
    """A root (directory or bucket prefix). Every write of one object is atomic: readers see the old
    object or the whole new one, never a partial one."""

    uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def upload_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def download_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under prefix (recursively), sorted."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def child(self, prefix: str) -> Storage: ...

    def key_uri(self, key: str) -> str:
        return join_uri(self.uri, key)

    # --- compare-and-swap of one small object (the promotion record) ---

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and a token that changes whenever it is rewritten (S3: its ETag), or None."""
        raise StorageError(f"{type(self).__name__} has no conditional writes", where=self.key_uri(key),
                           fix="promote to a local directory or an S3 store that supports If-Match")

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        """Write only if the object is still the one read with token `expected` (None: only if it does
        not exist). False when another writer got there first; nothing is written then."""
        raise StorageError(f"{type(self).__name__} has no conditional writes", where=self.key_uri(key),
                           fix="promote to a local directory or an S3 store that supports If-Match")

    def is_prefix(self, key: str) -> bool:
        """True when key names a 'directory' with objects under it."""
        return bool(self.list(key.rstrip("/") + "/")) if key else bool(self.list())

    def upload_tree(self, key: str, directory: Path) -> builtins.list[str]:
        uploaded = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            relative = path.relative_to(directory).as_posix()
            target = join_uri(key, relative) if key else relative
            self.upload_file(target, path)
            uploaded.append(target)
        return uploaded

    def download_tree(self, key: str, directory: Path) -> builtins.list[Path]:
        prefix = key.rstrip("/") + "/" if key else ""
        written = []
        for item in self.list(prefix):
            relative = PurePosixPath(item[len(prefix):])
            # Keys come from the store, which may be shared or hostile: never write outside directory.
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise StorageError(f"stored key {item!r} would be written outside {directory}",
                                   where=self.key_uri(item), fix="remove or rename that object")
            target = directory.joinpath(*relative.parts)
            self.download_file(item, target)
            written.append(target)
        return written
