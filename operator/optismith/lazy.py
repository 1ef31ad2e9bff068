"""Objects named by `module:attribute` paths, imported when first asked for.

The registries (stages, runtimes) and the variant catalog's builders name their code this way, so that a
registry never imports what it lists (no import cycle, and TensorFlow loads only where a stage needs it).
"""

from __future__ import annotations

import importlib
from typing import Any


def load(path: str) -> Any:
    """The attribute `path` ('package.module:name') names, importing its module if needed."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"not a 'module:attribute' path: {path!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"{module_name} has no {attribute!r} (from {path!r})") from None
