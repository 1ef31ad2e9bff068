"""Errors users can act on: each says what is wrong, where, and how to fix it, and maps to an exit code.

Exit codes are distinct per class of problem so scripts (and the operator, reading a Job's exit code
and termination message) can tell a bad manifest from a broken model from unreachable storage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OptismithError(Exception):
    """Base class: `what` went wrong, `where` (a field, URI or file), and `fix`."""

    what: str
    where: str = ""
    fix: str = ""

    exit_code = 1
    reason = "Failed"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"(at {self.where})")
        text = " ".join(parts)
        if self.fix:
            text += f". Fix: {self.fix}"
        return text

    def __str__(self) -> str:
        return self.message


class SpecError(OptismithError):
    """The manifest is invalid."""

    exit_code = 2
    reason = "InvalidSpec"


class ModelFormatError(OptismithError):
    """The model cannot be recognised or parsed."""

    exit_code = 3
    reason = "InvalidModel"


class ModelSignatureError(OptismithError):
    """The requested signature, input or output does not exist in the model."""

    exit_code = 4
    reason = "InvalidSignature"


class StorageError(OptismithError):
    """An object or bucket is missing, unreachable, or not writable."""

    exit_code = 5
    reason = "StorageError"


class StorageAuthError(StorageError):
    """Credentials were rejected."""

    exit_code = 6
    reason = "StorageAccessDenied"


class DataError(OptismithError):
    """Calibration or evaluation data is missing or does not fit the model."""

    exit_code = 7
    reason = "InvalidData"


class UnsafeModelError(OptismithError):
    """The model contains operations that reach outside the model (files, host, Python)."""

    exit_code = 8
    reason = "UnsafeModel"


class UnsafeArchiveError(OptismithError):
    """An archive (or a local model directory) tries to escape its directory, holds links or special files, or
    expands beyond the configured caps."""

    exit_code = 9
    reason = "UnsafeArchive"


class StageError(OptismithError):
    """A stage failed for a reason that is not the user's input."""

    exit_code = 10
    reason = "StageFailed"


class StageCrashedError(StageError):
    """A stage's process ended (killed, aborted, or exit() called by a library) before the stage recorded its
    outcome."""

    exit_code = 12
    reason = "StageCrashed"


class IncompleteRunError(OptismithError):
    """A run directory has no manifest, or a manifest whose digests do not match."""

    exit_code = 11
    reason = "IncompleteRun"


ALL_ERRORS: tuple[type[OptismithError], ...] = (
    OptismithError,
    SpecError,
    ModelFormatError,
    ModelSignatureError,
    StorageError,
    StorageAuthError,
    DataError,
    UnsafeModelError,
    UnsafeArchiveError,
    StageError,
    StageCrashedError,
    IncompleteRunError,
)
