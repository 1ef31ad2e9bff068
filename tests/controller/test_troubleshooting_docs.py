"""Every reason the operator or the CLI can report is explained in docs/troubleshooting.md: the reasons come
from the code's own registry (optismith.controller.reasons and the error classes), not from a search."""

from __future__ import annotations

import re
from pathlib import Path

from optismith.controller.reasons import all_reasons
from optismith.errors import ALL_ERRORS

ROOT = Path(__file__).resolve().parents[2]


def documented_reasons() -> set[str]:
    headings = re.findall(r"^### (.+)$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.M)
    return {word for heading in headings for word in re.findall(r"\w+", heading)}


def test_every_reason_is_documented() -> None:
    missing = sorted(set(all_reasons()) - documented_reasons())
    assert not missing, f"document these reasons in docs/troubleshooting.md: {missing}"


def test_the_registry_has_every_error_class_and_the_operator_outcomes() -> None:
    reasons = all_reasons()
    assert {error.reason for error in ALL_ERRORS} <= set(reasons)
    assert {"DeadlineExceeded", "JobFailed", "Superseded", "Unschedulable", "ResultsUnreadable"} <= set(reasons)
    assert all(reason.meaning for reason in reasons.values())
