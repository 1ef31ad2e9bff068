"""Regenerate optismith/models/policy/reviewed.py from this process's TensorFlow registry, after reviewing what
`tests/models/policy/test_registry.py` listed and classifying it in ops.py:

    PYTHONPATH=operator:. python -m tests.models.policy.snapshot
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from optismith.models.policy import reviewed
from optismith.models.policy.classify import registry

TARGET = Path(reviewed.__file__)


def render(names: list[str], version: str) -> str:
    body = "\n".join("    " + line for line in textwrap.wrap(" ".join(sorted(names)), 116, break_on_hyphens=False))
    header = (reviewed.__doc__ or "").replace(reviewed.TENSORFLOW_VERSION, version)
    return f'"""{header}"""\n\nTENSORFLOW_VERSION = "{version}"\n\n_NAMES = """\n{body}\n"""\n' \
        "REVIEWED_OPS = frozenset(_NAMES.split())\n"


if __name__ == "__main__":
    import tensorflow as tf

    TARGET.write_text(render(list(registry()), tf.__version__))
    print(f"wrote {TARGET}")
