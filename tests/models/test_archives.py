"""Archives from untrusted users: traversal, links, devices, bombs and corruption are refused."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from optismith.errors import ModelFormatError, UnsafeArchiveError
from optismith.models.archives import _Budget, _copy_limited, extract_archive, is_archive, safe_member_path
from optismith.spec import LimitsSpec


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


LIMITS = LimitsSpec()


def test_safe_archive_unpacks_and_unwraps_its_single_folder(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("model/saved_model.pb", b"pb"), _file("model/variables/v", b"12")])
    root = extract_archive(archive, tmp_path / "out", LIMITS)
    assert root == tmp_path / "out" / "model"
    assert (root / "saved_model.pb").read_bytes() == b"pb"
    assert (root / "variables" / "v").read_bytes() == b"12"


def test_zip_with_files_at_the_top_returns_the_directory_itself(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "m.zip", {"model.meta": b"m", "model.index": b"i"})
    root = extract_archive(archive, tmp_path / "out", LIMITS)
    assert root == tmp_path / "out"
    assert sorted(p.name for p in root.iterdir()) == ["model.index", "model.meta"]


@pytest.mark.parametrize("name", ["../evil", "model/../../evil", "/etc/evil", "..\\evil", "C:/evil"])
def test_tar_slip_is_refused_and_nothing_is_written_outside(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("model/ok", b"ok"), _file(name, b"evil")])
    with pytest.raises(UnsafeArchiveError, match="outside the archive's directory") as caught:
        extract_archive(archive, tmp_path / "out" / "x", LIMITS)
    assert repr(name) in caught.value.what
    assert "relative paths" in caught.value.fix
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not (tmp_path / "out" / "x").exists(), "a refused archive leaves nothing behind"


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "m.zip", {"ok.txt": b"ok", "../../evil.txt": b"evil"})
    with pytest.raises(UnsafeArchiveError, match="path traversal"):
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    ("kind", "label"),
    [(tarfile.SYMTYPE, "link"), (tarfile.LNKTYPE, "link"), (tarfile.CHRTYPE, "device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_links_and_devices_in_tar_are_refused(tmp_path: Path, kind: bytes, label: str) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("model/a", b"a"), _special("model/b", kind, "/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match=label) as caught:
        extract_archive(archive, tmp_path / "out", LIMITS)
    assert "model/b" in caught.value.what


def test_symlink_in_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_archive(path, tmp_path / "out", LIMITS)


def test_decompression_bomb_zip_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros": bytes(4 * 1024 * 1024)})
    assert archive.stat().st_size < 20_000  # small on disk...
    with pytest.raises(UnsafeArchiveError, match="maxExpandedSize") as caught:
        extract_archive(archive, tmp_path / "out", LimitsSpec(max_expanded_size="1Mi"))  # ...huge unpacked
    assert "decompression bomb" in caught.value.fix
    assert not (tmp_path / "out").exists()


def test_tar_declaring_more_than_the_cap_is_refused_before_writing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("big", bytes(200_000))])
    with pytest.raises(UnsafeArchiveError, match="declares 200000 bytes"):
        extract_archive(archive, tmp_path / "out", LimitsSpec(max_expanded_size="100k"))


def test_bytes_actually_written_are_counted_even_when_sizes_lie(tmp_path: Path) -> None:
    budget = _Budget(archive="a.zip", max_bytes=1000, max_entries=10)
    budget.declare("small", 10)  # what the header claims
    with pytest.raises(UnsafeArchiveError, match="expanded to more than"):
        _copy_limited(io.BytesIO(bytes(5000)), tmp_path / "f", budget)  # what the stream delivers


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_too_many_entries_are_refused(tmp_path: Path, kind: str) -> None:
    names = [f"f{i}" for i in range(6)]
    if kind == "tar":
        archive = _tar(tmp_path / "m.tar.gz", [_file(n, b"x") for n in names])
    else:
        archive = _zip(tmp_path / "m.zip", dict.fromkeys(names, b"x"))
    with pytest.raises(UnsafeArchiveError, match="more than 5 entries") as caught:
        extract_archive(archive, tmp_path / "out", LimitsSpec(max_archive_entries=5))
    assert "maxArchiveEntries" in caught.value.what + caught.value.fix


@pytest.mark.parametrize("name", ["m.tar.gz", "m.zip", "m.tgz"])
def test_corrupt_archive_is_a_format_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        extract_archive(path, tmp_path / "out", LIMITS)


def test_truncated_tar_gz_is_a_format_error(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("a", bytes(range(256)) * 400)])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ModelFormatError, match="corrupt or truncated"):
        extract_archive(archive, tmp_path / "out", LIMITS)


def test_empty_archive_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="empty"):
        extract_archive(_zip(tmp_path / "m.zip", {}), tmp_path / "out", LIMITS)


def test_member_paths_stay_inside(tmp_path: Path) -> None:
    assert safe_member_path(tmp_path, "a/b/c", "x") == (tmp_path / "a" / "b" / "c").resolve()
    with pytest.raises(UnsafeArchiveError):
        safe_member_path(tmp_path, "a/../../b", "x")


def test_archive_names() -> None:
    assert all(is_archive(n) for n in ("m.tar.gz", "M.TGZ", "m.tar", "m.zip"))
    assert not any(is_archive(n) for n in ("m.keras", "m.pb", "saved_model"))
