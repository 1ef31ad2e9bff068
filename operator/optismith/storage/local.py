"""A directory on the local file system."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from optismith.errors import StorageError
from optismith.storage.base import Storage, normalize_key

_TEMP_SUFFIX = ".part"
_HELD = threading.local()  # directories this thread holds the lock of
_WRITABLE_FIX = "choose a writable output location or fix its permissions"


def _fix_for(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "free some disk space or choose another output location"
    if error.errno == errno.EROFS:
        return "the file system is read-only: choose a writable output location"
    if error.errno == errno.ENOTDIR:
        return "a path component is a file, not a directory: choose another output location"
    return _WRITABLE_FIX


def atomic_write(path: Path, fill: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary sibling and os.replace it into place, so a reader (or a crash) sees the
    old file or the complete new one, never a partial one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"cannot create directory: {error.strerror}", where=str(path.parent),
                           fix=_fix_for(error)) from None
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
    try:
        # os.open with 0o666 lets the umask decide the final mode, as a plain open() would; mkstemp's
        # 0o600 would make published artifacts unreadable to a serving process under another uid.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise StorageError(f"cannot write: {error.strerror}", where=str(path), fix=_fix_for(error)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise StorageError(f"cannot write: {error.strerror}", where=str(path), fix=_fix_for(error)) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _bytes(data: bytes) -> Callable[[BinaryIO], None]:
    def fill(handle: BinaryIO) -> None:
        handle.write(data)

    return fill


def _copy_from(source: Path) -> Callable[[BinaryIO], None]:
    def fill(handle: BinaryIO) -> None:
        with source.open("rb") as reader:
            shutil.copyfileobj(reader, handle, 1 << 20)

    return fill


class LocalStorage(Storage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        clean = normalize_key(key, self.uri)
        path = (self.root / clean).resolve() if clean else self.root
        # resolve() follows symlinks: a link inside the root that points outside is refused too.
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} escapes the storage root", where=self.uri,
                               fix="use keys relative to the root without '..' or symlinks leaving it")
        return path

    def _existing_file(self, key: str) -> Path:
        path = self._path(key)
        if path.is_dir():
            raise StorageError("expected a file but found a directory", where=str(path),
                               fix="name a file inside it, or use the directory's keys")
        if not path.is_file():
            raise StorageError("no such file", where=str(path),
                               fix="check the path and that the stage producing it has run")
        return path

    def read_bytes(self, key: str) -> bytes:
        path = self._existing_file(key)
        try:
            return path.read_bytes()
        except OSError as error:
            raise StorageError(f"cannot read: {error.strerror}", where=str(path),
                               fix="check the file's permissions") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        atomic_write(self._path(key), _bytes(data))

    def upload_file(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise StorageError("no such local file to upload", where=str(path), fix="check the path")
        atomic_write(self._path(key), _copy_from(path))

    def download_file(self, key: str, path: Path) -> None:
        atomic_write(path, _copy_from(self._existing_file(key)))

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys of the file named prefix and of every file below it; a trailing '/' means below only."""
        base = self._path(prefix)
        if base.is_file() and not prefix.endswith("/"):
            return [base.relative_to(self.root).as_posix()]
        if not base.is_dir():
            return []
        # Hidden *.part files are atomic_write's in-flight temporaries, not objects.
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not (p.name.startswith(".") and p.name.endswith(_TEMP_SUFFIX))
        )

    def size(self, key: str) -> int:
        return self._existing_file(key).stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"cannot delete: {error.strerror}", where=str(path),
                               fix="fix the permissions of the output location") from None

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """An exclusive flock on the directory that holds `key`, across processes: compare-and-swap (and a
        promotion as a whole) is serialized by it. A lock on the directory, not on a lock file, leaves no
        object behind."""
        directory = self._path(key).parent
        held: set[Path] = _HELD.__dict__.setdefault("directories", set())
        if directory in held:  # re-entrant within a thread: a second flock on another descriptor would deadlock
            yield
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY)
        except OSError as error:
            raise StorageError(f"cannot lock: {error.strerror}", where=str(directory), fix=_fix_for(error)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(directory)
            yield
        finally:
            held.discard(directory)
            os.close(fd)  # closing releases the lock

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        data = self.read_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        with self.locked(key):
            current = self.read_versioned(key)
            if (current[1] if current else None) != expected:
                return False
            self.write_bytes(key, data)
            return True

    def child(self, prefix: str) -> LocalStorage:
        return LocalStorage(self._path(prefix))

    def local_path(self, key: str = "") -> Path:
        return self._path(key)
