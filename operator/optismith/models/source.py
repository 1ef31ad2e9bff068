"""Bringing the model named by `spec.model.uri` to a local path.

The URI may name a directory (a local one, or an S3 prefix), one file, or a .tar.gz/.tgz/.tar/.zip
archive. Sizes are checked against `spec.limits` before anything large is downloaded.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from optismith.errors import ModelFormatError, StorageError, UnsafeArchiveError
from optismith.models.archives import extract_archive, is_archive
from optismith.spec import LimitsSpec, ModelSource, StorageSpec, size_bytes
from optismith.storage import Storage, open_storage


def _too_large(size: int, limit: int, where: str, archive: bool) -> Exception:
    what = "archive" if archive else "model"
    message = f"the {what} is {size} bytes, over spec.limits.maxModelSize ({limit} bytes)"
    fix = "point spec.model.uri at the right model, or raise spec.limits.maxModelSize if it is"
    if archive:
        return UnsafeArchiveError(message, where=where, fix=fix)
    return ModelFormatError(message, where=where, fix=fix)


def check_local_tree(path: Path) -> None:
    """A local model is read in place and its baseline copied into the run: a symbolic link inside it would bring
    whatever it points to (a host file, /proc/self/environ) along, and a FIFO or device would hang or lie. Refused
    as in archives. The path itself may be a link (a user's `current -> v3`): it is the user's own choice."""
    if not path.is_dir():
        return
    for root, directories, files in os.walk(path):
        for name in directories + files:
            entry = Path(root) / name
            mode = os.lstat(entry).st_mode
            kind = "a symbolic link" if stat.S_ISLNK(mode) else None if stat.S_ISDIR(mode) or stat.S_ISREG(mode) \
                else "a device, FIFO or socket"
            if kind:
                raise UnsafeArchiveError(
                    f"{entry.relative_to(path)} in the model directory is {kind}; a model may only hold regular "
                    "files and directories", where=str(entry),
                    fix="replace links with the files they point to (cp -rL), or archive the model")


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/models/m.zip' -> ('s3://bucket/models', 'm.zip'); 's3://bucket' -> ('s3://bucket', '')."""
    trimmed = uri.rstrip("/")
    if "/" not in trimmed.removeprefix("s3://"):
        return trimmed, ""
    parent, _, name = trimmed.rpartition("/")
    return parent, name


def fetch_into(store: Storage, name: str, dest: Path, max_size: int) -> Path:
    """Download object `name` (or every object under the prefix `name`) from `store` into `dest`,
    refusing before the download when the total size is over `max_size`. A missing object raises
    the storage's own StorageError."""
    where = store.key_uri(name)
    if name and store.exists(name) and not store.is_prefix(name):
        size = store.size(name)
        if size > max_size:
            raise _too_large(size, max_size, where, is_archive(name))
        target = dest / name
        store.download_file(name, target)
        return target
    prefix = f"{name.rstrip('/')}/" if name else ""
    keys = store.list(prefix)
    if not keys:
        # Let the storage say what is missing in its own words (bucket, key, credentials).
        store.download_file(name, dest / (name or "model"))
        raise StorageError("nothing is stored there", where=where, fix="check spec.model.uri")
    total = 0
    for key in keys:
        total += store.size(key)
        if total > max_size:
            raise _too_large(total, max_size, where, archive=False)
    local = dest / (Path(name).name if name else "model")
    for key in keys:
        store.download_file(key, local / key[len(prefix):])
    return local


def materialize(model: ModelSource, storage: StorageSpec, limits: LimitsSpec, dest: Path) -> Path:
    """A local file or directory holding the model (archives unpacked under `dest`). Local models are
    used in place; remote ones are downloaded under `dest`."""
    max_size = size_bytes(limits.max_model_size)
    for stale in ("download", "unpacked"):  # a retried stage must not mix in files from an earlier attempt
        shutil.rmtree(dest / stale, ignore_errors=True)
    if model.uri.startswith("s3://"):
        parent_uri, name = split_uri(model.uri)
        path = fetch_into(open_storage(parent_uri, storage), name, dest / "download", max_size)
    else:
        path = Path(model.uri.removeprefix("file://")).expanduser()
        if not path.exists():
            raise StorageError("no such file or directory", where=str(path),
                               fix="check spec.model.uri (relative paths are relative to the manifest)")
        path = path.resolve()
        check_local_tree(path)
        size = _tree_size(path)
        if size > max_size:
            raise _too_large(size, max_size, str(path), path.is_file() and is_archive(path.name))
    if path.is_file() and is_archive(path.name):
        return extract_archive(path, dest / "unpacked", limits, where=model.uri)
    return path
