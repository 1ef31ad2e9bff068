"""Archives that cannot be unpacked as they are: entry counts read from the zip's end record before its directory
is parsed, entries that conflict or cannot be names, encrypted and oddly compressed entries, a full disk. Each is
a named error (never a raw exception) and leaves no partial directory; a local model directory with a link in it
is refused like an archive holding one."""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from optismith.errors import ModelFormatError, StorageError, UnsafeArchiveError
from optismith.models import archives
from optismith.models.archives import extract_archive
from optismith.models.source import check_local_tree
from optismith.models.zipcheck import central_directory
from optismith.spec import LimitsSpec

ROOT = Path(__file__).resolve().parents[2]
LIMITS = LimitsSpec()


def tar_of(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """Entries in order: bytes for a file, None for a directory."""
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def zip_of(path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def patch_end_record(path: Path, entries: int | None = None, directory_size: int | None = None) -> Path:
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    if entries is not None:
        data[at + 8:at + 12] = struct.pack("<HH", entries, entries)
    if directory_size is not None:
        data[at + 12:at + 16] = struct.pack("<I", directory_size)
    path.write_bytes(bytes(data))
    return path


def patch_every_header(path: Path, offset_local: int, offset_central: int, value: bytes) -> Path:
    """Overwrite a field in each local header (PK\\3\\4) and central directory entry (PK\\1\\2)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset:at + offset + len(value)] = value
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


def no_directory_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("zipfile parsed the central directory of an archive the end record already refuses")

    monkeypatch.setattr(archives.zipfile, "ZipFile", refuse)


@pytest.fixture(scope="module")
def zip64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over 65535 entries zip writes a ZIP64 end record, whose 8-byte count is the one that matters."""
    return zip_of(tmp_path_factory.mktemp("zip64") / "m.zip", [(f"f{i}", b"") for i in range(70_000)])


def test_the_zip64_end_record_is_read(zip64: Path, tmp_path: Path) -> None:
    assert central_directory(zip64, "m").entries == 70_000
    with pytest.raises(UnsafeArchiveError, match="more than 65536 entries"):
        extract_archive(zip64, tmp_path / "out", LimitsSpec(max_archive_entries=65_536))


def test_a_million_entries_are_refused_from_the_end_record_alone(
    zip64: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(zip64.read_bytes())
    record = data.rfind(b"PK\x06\x06")
    data[record + 24:record + 40] = struct.pack("<QQ", 1_000_000, 1_000_000)
    (tmp_path / "m.zip").write_bytes(bytes(data))
    no_directory_parse(monkeypatch)
    with pytest.raises(UnsafeArchiveError, match=r"more than 100000 entries.*declares 1000000"):
        extract_archive(tmp_path / "m.zip", tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_a_central_directory_padded_beyond_its_entries_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = patch_end_record(zip_of(tmp_path / "m.zip", [("a", b"x")]), directory_size=500 << 20)
    no_directory_parse(monkeypatch)
    with pytest.raises(UnsafeArchiveError, match="central directory is 524288000 bytes for 1 entries"):
        extract_archive(archive, tmp_path / "out", LIMITS)


CONFLICTS = {
    "a file, then a directory of its name": [("model/a", b"x"), ("model/a", None)],
    "a file, then a file under it": [("model/a", b"x"), ("model/a/b", b"y")],
    "a directory, then a file of its name": [("model/a", None), ("model/a", b"x")],
    "the same file twice (the second would replace what was checked)": [("model/a", b"x"), ("model/a", b"y")],
    "'.' as a file": [(".", b"x")],
    "a 300-byte name": [("model/" + "n" * 300, b"x")],
    "a 5000-byte path": [("/".join(["d" * 200] * 25), b"x")],
}


@pytest.mark.parametrize("case", list(CONFLICTS))
def test_entries_that_cannot_coexist_are_refused_and_nothing_is_left(tmp_path: Path, case: str) -> None:
    archive = tar_of(tmp_path / "m.tar", CONFLICTS[case])
    with pytest.raises(UnsafeArchiveError):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_a_zip_with_a_file_then_a_directory_of_its_name_is_refused(tmp_path: Path) -> None:
    archive = zip_of(tmp_path / "m.zip", [("model/a", b"x"), ("model/a/", b"")])
    with pytest.raises(UnsafeArchiveError, match="repeats the name of an earlier file"):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_an_encrypted_entry_is_a_format_error(tmp_path: Path) -> None:
    archive = patch_every_header(zip_of(tmp_path / "m.zip", [("model/a", b"x")]), 6, 8, b"\x01\x00")
    with pytest.raises(ModelFormatError, match="encrypted"):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_an_unknown_compression_method_is_a_format_error(tmp_path: Path) -> None:
    archive = patch_every_header(zip_of(tmp_path / "m.zip", [("model/a", b"x")]), 8, 10, struct.pack("<H", 99))
    with pytest.raises(ModelFormatError, match="compression method 99"):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_a_storage_error_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tar_of(tmp_path / "m.tar", [("model/a", b"x" * 10), ("model/b", b"y" * (4 << 20))])
    real_open = Path.open

    def open_on_a_full_disk(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if "w" in mode and self.name == "b":
            def write(data: bytes) -> int:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
            handle.write = write  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(Path, "open", open_on_a_full_disk)
    with pytest.raises(StorageError, match="no space left") as caught:
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert caught.value.where.endswith("out/model/b")
    assert not (tmp_path / "out").exists()


FILL_A_SMALL_TMPFS = """
import json, sys
from pathlib import Path
from optismith.errors import OptismithError
from optismith.models.archives import extract_archive
from optismith.spec import LimitsSpec
try:
    extract_archive(Path(sys.argv[1]), Path(sys.argv[2]) / "out", LimitsSpec())
    print(json.dumps({"error": None}))
except OptismithError as error:
    print(json.dumps({"error": error.reason, "where": error.where, "left": Path(sys.argv[2], "out").exists()}))
"""


def test_a_real_full_disk_is_a_storage_error(tmp_path: Path) -> None:
    """A 1 MiB tmpfs in a private mount namespace, and an archive that unpacks to 4 MiB."""
    archive = tar_of(tmp_path / "m.tar", [("model/big", os.urandom(4 << 20))])
    small = tmp_path / "small"
    small.mkdir()
    script = f"mount -t tmpfs -o size=1m tmpfs {small} && exec {sys.executable} -c \"$0\" {archive} {small}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)])}
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script,
                               FILL_A_SMALL_TMPFS], capture_output=True, text=True, timeout=120, env=env, check=False)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if done.returncode != 0 and "mount" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr.strip()}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"error": "StorageError", "where": f"{small}/out/model/big", "left": False}, done.stderr


def test_a_link_in_a_local_model_directory_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "assets").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"pb")
    (model / "assets" / "vocab.txt").symlink_to("/proc/self/environ")
    with pytest.raises(UnsafeArchiveError, match=r"assets/vocab.txt in the model directory is a symbolic link"):
        check_local_tree(model)
    (model / "assets" / "vocab.txt").unlink()
    os.mkfifo(model / "assets" / "vocab.txt")
    with pytest.raises(UnsafeArchiveError, match="a device, FIFO or socket"):
        check_local_tree(model)
    (model / "assets" / "vocab.txt").unlink()
    (model / "assets" / "vocab.txt").write_text("a\n")
    check_local_tree(model)
    (tmp_path / "current").symlink_to(model)
    check_local_tree((tmp_path / "current").resolve())  # the model's own path may be a link
