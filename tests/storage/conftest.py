"""Fixtures shared by the storage tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _writable(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can create files in, even when the tests run as root.

    chmod is enough for ordinary users; root ignores it, so there the directory is made immutable
    (chattr +i needs CAP_LINUX_IMMUTABLE and a file system that supports it).
    """
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    immutable = False
    if _writable(directory) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(directory)], check=False, capture_output=True).returncode == 0
    if _writable(directory):
        directory.chmod(0o755)
        pytest.skip("cannot make a read-only directory here (root without chattr +i support)")
    yield directory
    if immutable:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    os.chmod(directory, 0o755)
