"""Library output goes to log files, not the terminal.

TensorFlow's C++ runtime, absl, the TFLite converter, MLIR diagnostics, ONNX Runtime and OpenVINO write to
file descriptors 1 and 2 directly, below Python; Python's logging and warnings write to sys.stderr. Pointing
the descriptors themselves at a file while a stage runs catches all of them: the stage's log
(`runs.layout.stage_log`), which the run directory keeps and `--verbose` streams.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def redirected_output(path: Path, descriptors: Sequence[int] = (1, 2)) -> Iterator[None]:
    """Append everything written to `descriptors` (by Python or by native code) to `path` meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in descriptors]
    try:
        with open(path, "ab") as log:
            for fd in descriptors:
                os.dup2(log.fileno(), fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, copy in zip(descriptors, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


class LogFollower:
    """Streams the lines appended to the files of a directory (`--verbose`), from a thread, until stopped."""

    def __init__(self, directory: Path, emit: Callable[[str, str], None], interval: float = 0.2) -> None:
        self.directory = directory
        self.emit = emit  # (file name, line)
        self.interval = interval
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.log")):
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                self.emit(path.name, line)


def printable(text: str, limit: int = 300) -> str:
    """Text a model may have influenced, safe to show in a terminal: no control characters (escape
    sequences could rewrite the screen), one line, bounded."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text.replace("\n", " "))
    return cleaned[:limit]
