"""A directory on the local file system."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from optismith.errors import StorageError
from optismith.storage.base import Storage


class LocalStorage(Storage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve() if key else self.root
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} escapes the storage root", where=self.uri,
                               fix="use keys relative to the root without '..'")
        return path

    def _writable_parent(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot create directory: {error.strerror}", where=str(path.parent),
                               fix="choose a writable output location or fix its permissions") from None

    def _atomic(self, path: Path, fill: object) -> None:
        self._writable_parent(path)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        except OSError as error:
            raise StorageError(f"cannot write: {error.strerror}", where=str(path),
                               fix="choose a writable output location or fix its permissions") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(fill, bytes):
                    handle.write(fill)
                else:
                    with Path(str(fill)).open("rb") as source:
                        shutil.copyfileobj(source, handle, 1 << 20)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except OSError as error:
            Path(temp).unlink(missing_ok=True)
            hint = "free some disk space" if error.errno == errno.ENOSPC else "check the output location"
            raise StorageError(f"cannot write: {error.strerror}", where=str(path), fix=hint) from None
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StorageError("no such file", where=str(path), fix="check the path") from None
        except OSError as error:
            raise StorageError(f"cannot read: {error.strerror}", where=str(path)) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        self._atomic(self._path(key), data)

    def upload_file(self, key: str, path: Path) -> None:
        self._atomic(self._path(key), path)

    def download_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise StorageError("no such file", where=str(source), fix="check the path")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if base.is_file():
            return [prefix.rstrip("/")]
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def child(self, prefix: str) -> LocalStorage:
        return LocalStorage(self._path(prefix))

    def local_path(self, key: str = "") -> Path:
        return self._path(key)
