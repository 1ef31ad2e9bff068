"""The final table's status words: one vocabulary, and a measured variant is never 'built'."""

from __future__ import annotations

import pytest

from optismith.ui import status_word


@pytest.mark.parametrize(("variant", "benchmark", "passed", "word"), [
    ("built", None, None, "built"),          # built, not measured (e.g. a GPU variant on a CPU-only run)
    ("built", "built", True, "passed"),      # measured and passed the gates
    ("built", "built", False, "measured"),   # measured, did not pass (the gates column says why)
    ("built", "failed", None, "failed"),     # the measurement failed
    ("rejected", None, None, "failed"),      # numerics too far from the source
    ("failed", None, None, "failed"),
    ("skipped", None, None, "skipped"),
    ("built", "skipped", None, "skipped"),   # no runtime for it on this target
])
def test_status_words(variant: str, benchmark: str | None, passed: bool | None, word: str) -> None:
    assert status_word(variant, benchmark, passed) == word
