"""Runtimes behind one small interface: load an artifact, feed arrays, get arrays back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class IOSpec:
    name: str
    dtype: str  # numpy dtype name of what the caller feeds / receives (float32 for int8-I/O models too)
    shape: tuple[int | None, ...]  # None for dynamic dimensions


class Session(ABC):
    """A loaded model. `run` takes one array per input, in `inputs` order, in the source model's
    dtypes (float inputs stay float even for int8-I/O models: the session quantizes at the boundary)."""

    inputs: list[IOSpec]
    outputs: list[IOSpec]

    @abstractmethod
    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Runtime(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when usable here; otherwise why not (missing package, no GPU, ...)."""

    @classmethod
    @abstractmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        """Load the artifact (file or directory) with `threads` intra-op threads."""

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {}
