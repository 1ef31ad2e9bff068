"""Checks on a zip file before Python's zipfile reads it: zipfile parses the whole central directory into memory
when it opens an archive, so a million-entry archive costs hundreds of MiB before any count could be checked.
The end-of-central-directory record (22 bytes at the end, or its ZIP64 twin) says how many entries there are and
how large the directory is; both are checked first. Used for model archives and for .npz data files.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from optismith.errors import ModelFormatError, UnsafeArchiveError

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_EOCD_SIZE = 22
_LOCATOR_SIZE = 20
_MAX_COMMENT = 0xFFFF
# A central directory entry is 46 bytes plus its name, extra field and comment: allow 1 KiB each, plus slack.
_DIRECTORY_BYTES_PER_ENTRY = 1024
_DIRECTORY_SLACK = 1 << 20
READABLE_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                        zipfile.ZIP_LZMA: "lzma"}


@dataclass(frozen=True)
class CentralDirectory:
    entries: int
    size: int


def central_directory(path: Path, where: str) -> CentralDirectory:
    """What the end-of-central-directory record (and its ZIP64 twin) declares, without reading the directory."""
    fix = "re-create the archive (zip -r model.zip DIR)"

    def corrupt(detail: str) -> ModelFormatError:
        return ModelFormatError(f"the archive is corrupt or truncated: {detail}", where=where, fix=fix)

    size = path.stat().st_size
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT + _LOCATOR_SIZE)
    with path.open("rb") as handle:
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < _EOCD_SIZE:
            raise corrupt("it has no zip end-of-central-directory record")
        entries, directory_size, offset = struct.unpack("<HII", tail[at + 10:at + 20])
        if entries != 0xFFFF and directory_size != 0xFFFFFFFF and offset != 0xFFFFFFFF:
            return CentralDirectory(entries, directory_size)
        locator = tail[at - _LOCATOR_SIZE:at] if at >= _LOCATOR_SIZE else b""
        if not locator.startswith(_ZIP64_LOCATOR):
            raise corrupt("a ZIP64 archive without its ZIP64 locator")
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        if record_offset > size - 56:
            raise corrupt("its ZIP64 end record lies outside the file")
        handle.seek(record_offset)
        record = handle.read(56)
    if not record.startswith(_ZIP64_EOCD):
        raise corrupt("its ZIP64 end record is damaged")
    entries64, directory_size64 = struct.unpack("<QQ", record[32:48])
    return CentralDirectory(entries64, directory_size64)


def check_central_directory(path: Path, max_entries: int, where: str, limit_name: str) -> CentralDirectory:
    """Refuse an archive declaring more entries than `max_entries`, or a directory too large for its entries,
    before anything parses the directory."""
    directory = central_directory(path, where)
    if directory.entries > max_entries:
        raise UnsafeArchiveError(
            f"the archive has more than {max_entries} entries ({limit_name}): its end record declares "
            f"{directory.entries}",
            where=where, fix=f"pack only the files that are needed, or raise {limit_name} if you trust it",
        )
    if directory.size > directory.entries * _DIRECTORY_BYTES_PER_ENTRY + _DIRECTORY_SLACK:
        raise UnsafeArchiveError(
            f"the archive's central directory is {directory.size} bytes for {directory.entries} entries",
            where=where, fix="re-create the archive (zip -r model.zip DIR); a padded directory looks like this",
        )
    return directory


def check_member(info: zipfile.ZipInfo, where: str) -> None:
    """An entry zipfile can read: not encrypted, and compressed with a method it knows."""
    if info.flag_bits & 0x1:
        raise ModelFormatError(f"entry {info.filename!r} is encrypted", where=where,
                               fix="re-create the archive without a password")
    if info.compress_type not in READABLE_COMPRESSION:
        raise ModelFormatError(
            f"entry {info.filename!r} uses compression method {info.compress_type}, which cannot be read "
            f"(supported: {', '.join(READABLE_COMPRESSION.values())})",
            where=where, fix="re-create the archive with deflate (zip -r)")
