"""Unpacking model archives (.tar.gz, .tgz, .tar, .zip) that may come from someone we do not trust.

An archive can try to write outside its directory (`../evil`, `/etc/passwd`), plant links or device
files, expand a few kilobytes into gigabytes, declare a million entries, or hold entries that cannot
coexist (a file and a directory of one name, `.` as a file, names no file system holds, encrypted or
oddly compressed entries). Entries are checked one by one before anything is written, both the sizes the
archive declares and the bytes actually written are counted (a crafted archive can lie about its sizes),
and a zip's entry count is read from its end record before its directory is parsed. Every failure removes
what was unpacked and names the archive.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from optismith.errors import ModelFormatError, StorageError, UnsafeArchiveError
from optismith.models.zipcheck import check_central_directory, check_member
from optismith.spec import LimitsSpec, size_bytes

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CHUNK = 1 << 20


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class _Budget:
    """What is left of the caps while unpacking."""

    archive: str
    max_bytes: int
    max_entries: int
    entries: int = 0
    declared: int = 0
    written: int = 0

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise self.too_many()

    def too_many(self) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"the archive has more than {self.max_entries} entries (limit spec.limits.maxArchiveEntries)",
            where=self.archive,
            fix="pack only the model's files, or raise spec.limits.maxArchiveEntries if you trust it",
        )

    def declare(self, name: str, size: int) -> None:
        self.declared += max(size, 0)
        if self.declared > self.max_bytes:
            raise self._too_big(f"declares {self.declared} bytes by entry {name!r}")

    def write(self, size: int) -> None:
        self.written += size
        if self.written > self.max_bytes:
            raise self._too_big(f"expanded to more than {self.written} bytes")

    def _too_big(self, detail: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"the archive {detail}, over spec.limits.maxExpandedSize ({self.max_bytes} bytes)",
            where=self.archive,
            fix="check the archive is the model you meant (a decompression bomb looks like this), "
            "or raise spec.limits.maxExpandedSize",
        )


_NAME_BYTES = 255  # one path component, as Linux file systems allow
_PATH_BYTES = 4096
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def safe_member_path(dest: Path, name: str, archive: str) -> Path:
    """Where an entry may be written, or UnsafeArchiveError when its name leaves `dest` or cannot be a path."""
    posix = name.replace("\\", "/")
    relative = PurePosixPath(posix)
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":") or ".." in relative.parts:
        raise UnsafeArchiveError(
            f"entry {name!r} points outside the archive's directory (path traversal)",
            where=archive, fix="rebuild the archive with relative paths inside one directory",
        )
    if "\x00" in posix or len(posix.encode()) > _PATH_BYTES or \
            any(len(part.encode()) > _NAME_BYTES for part in relative.parts):
        raise UnsafeArchiveError(
            f"entry {name[:80]!r}... has a name no file system holds (a component over {_NAME_BYTES} bytes, a "
            f"path over {_PATH_BYTES}, or a NUL)", where=archive, fix="rebuild the archive with ordinary names")
    target = (dest / relative).resolve()
    root = dest.resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"entry {name!r} resolves outside the archive's directory", where=archive,
                                 fix="rebuild the archive with relative paths inside one directory")
    return target


class _Tree:
    """What the archive has put where so far: a file and a directory of one name, a second file of a name, or
    anything under a file, is a conflict (unpacking would fail half-way, or overwrite what was checked)."""

    def __init__(self, root: Path, archive: str) -> None:
        self.root = root.resolve()
        self.archive = archive
        self.kinds: dict[Path, str] = {self.root: "directory"}

    def claim(self, target: Path, name: str, kind: str) -> None:
        if target == self.root:
            if kind == "directory":
                return
            raise UnsafeArchiveError(f"entry {name!r} names the archive's own directory as a {kind}",
                                     where=self.archive, fix="rebuild the archive with a name for every file")
        ancestors = [parent for parent in target.parents if parent == self.root or self.root in parent.parents]
        for parent in ancestors:
            if self.kinds.get(parent) == "file":
                raise self._conflict(name, f"sits under the file {str(parent.relative_to(self.root))!r}")
        earlier = self.kinds.get(target)
        if earlier == "file" or (earlier is not None and earlier != kind):
            raise self._conflict(name, f"repeats the name of an earlier {earlier}")
        for parent in ancestors:
            self.kinds.setdefault(parent, "directory")
        self.kinds[target] = kind

    def _conflict(self, name: str, detail: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"entry {name!r} {detail}", where=self.archive,
                                  fix="rebuild the archive so that every path appears once, as one kind")


def _unsafe_type(name: str, kind: str, archive: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"entry {name!r} is a {kind}; model archives may only contain regular files and directories",
        where=archive, fix="replace links with the files they point to and rebuild the archive",
    )


def disk_full(path: Path, error: OSError) -> StorageError:
    return StorageError(f"no space left while writing ({error.strerror})", where=str(path),
                        fix="free space in the scratch directory, or give the worker a larger scratch volume")


def _copy_limited(source: IO[bytes], target: Path, budget: _Budget) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            while chunk := source.read(_CHUNK):
                budget.write(len(chunk))
                handle.write(chunk)
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise disk_full(target, error) from None
        raise


def _tar_members(archive: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    # Streaming ("r|*") reads headers one at a time, so a huge entry list is refused before it is all parsed.
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            yield tar, member


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    tree = _Tree(dest, budget.archive)
    for tar, member in _tar_members(archive):
        budget.count_entry()
        target = safe_member_path(dest, member.name, budget.archive)
        if member.issym() or member.islnk():
            raise _unsafe_type(member.name, "link", budget.archive)
        if member.isdir():
            tree.claim(target, member.name, "directory")
            target.mkdir(parents=True, exist_ok=True)
            continue
        if not member.isreg():
            raise _unsafe_type(member.name, "device, FIFO or special file", budget.archive)
        tree.claim(target, member.name, "file")
        budget.declare(member.name, member.size)
        source = tar.extractfile(member)
        if source is None:
            raise _unsafe_type(member.name, "special file", budget.archive)
        _copy_limited(source, target, budget)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    check_central_directory(archive, budget.max_entries, budget.archive, "spec.limits.maxArchiveEntries")
    tree = _Tree(dest, budget.archive)
    with zipfile.ZipFile(archive) as handle:
        members = handle.infolist()
        if len(members) > budget.max_entries:
            raise budget.too_many()
        for info in members:
            budget.count_entry()
            target = safe_member_path(dest, info.filename, budget.archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _unsafe_type(info.filename, "link", budget.archive)
            if info.is_dir():
                tree.claim(target, info.filename, "directory")
                target.mkdir(parents=True, exist_ok=True)
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                raise _unsafe_type(info.filename, "device, FIFO or special file", budget.archive)
            check_member(info, budget.archive)
            tree.claim(target, info.filename, "file")
            budget.declare(info.filename, info.file_size)
            with handle.open(info) as source:
                _copy_limited(source, target, budget)


def extract_archive(archive: Path, dest: Path, limits: LimitsSpec, *, where: str = "") -> Path:
    """Unpack `archive` into `dest` (created; must not hold anything yet) within the caps of `limits`.
    Returns the directory holding the model: `dest`, or its only subdirectory when the archive wraps
    everything in one folder. On any failure `dest` is removed and the error is one that names the archive:
    UnsafeArchiveError, ModelFormatError, or StorageError (with the path) when the disk is full."""
    label = where or str(archive)
    budget = _Budget(archive=label, max_bytes=size_bytes(limits.max_expanded_size),
                     max_entries=limits.max_archive_entries)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, budget)
        else:
            _extract_tar(archive, dest, budget)
        entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
        if not entries:
            raise ModelFormatError("the archive is empty", where=label, fix="pack the model's files into it")
    except (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, gzip.BadGzipFile,
            lzma.LZMAError, NotImplementedError, RuntimeError) as error:
        shutil.rmtree(dest, ignore_errors=True)
        raise ModelFormatError(f"the archive is corrupt or truncated: {error}", where=label,
                               fix="re-create the archive (tar czf model.tar.gz DIR, or zip -r)") from None
    except OSError as error:
        shutil.rmtree(dest, ignore_errors=True)
        if error.errno in _DISK_FULL:
            raise disk_full(Path(error.filename or dest), error) from None
        raise UnsafeArchiveError(f"an entry cannot be unpacked: {error.strerror} ({error.filename})", where=label,
                                 fix="rebuild the archive with ordinary names, each path once") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
