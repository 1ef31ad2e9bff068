"""Every reason the operator or the CLI can report is explained in docs/troubleshooting.md."""

from __future__ import annotations

import re
from pathlib import Path

from optismith.errors import ALL_ERRORS

ROOT = Path(__file__).resolve().parents[2]


def reasons_in_code() -> set[str]:
    found = {error.reason for error in ALL_ERRORS}
    for path in (ROOT / "operator" / "optismith" / "controller").glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'Decision\("\w+", "(\w+)"', text))
        found |= set(re.findall(r'cond\("\w+", "(?:True|False|Unknown)", "(\w+)"', text))
        found |= set(re.findall(r'"reason": "(\w+)"', text))
        found |= set(re.findall(r'post_event\([^)]*?"(?:Normal|Warning)", "(\w+)"', text))
    return found - {"Passed", "Promoted", "Succeeded", "Reconciling"}  # success states need no fix


def test_every_reason_is_documented() -> None:
    documented = set(re.findall(r"^### (\w+)", (ROOT / "docs" / "troubleshooting.md").read_text(), re.M))
    documented |= {
        part
        for heading in re.findall(r"^### (.+)$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.M)
        for part in re.findall(r"\w+", heading)
    }
    missing = sorted(reasons_in_code() - documented)
    assert not missing, f"document these reasons in docs/troubleshooting.md: {missing}"
