"""The alerts file is valid for Prometheus, each alert fires (and stays quiet) when it should
(promtool unit tests), and every metric the alerts and the dashboard use is one the operator exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.controller.metrics import OperatorMetrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "optismith" / "files" / "alerts.yaml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")
DASHBOARD = ROOT / "charts" / "optismith" / "files" / "dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
REQUIRED_ALERTS = {
    "OptismithOptimizationsFailing",
    "OptismithAccuracyGateFailing",
    "OptismithJobsQueued",
    "OptismithOperatorDown",
    "OptismithReconcileErrors",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "info": ("_info",),
    "gauge": ("",),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (`make system-deps` does it as root)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def exported_series_names() -> dict[str, str]:
    """Every series name the operator can export -> its metric family."""
    names = {}
    for family in OperatorMetrics().registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    alerts = {rule["alert"] for rule in rules()}
    assert alerts == REQUIRED_ALERTS
    fired, quiet = set(), set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fired == alerts and quiet == alerts


def test_alerts_are_actionable() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]


def test_every_runbook_url_is_a_section_of_the_troubleshooting_doc() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.MULTILINE)
    # GitHub's anchors: lower case, punctuation dropped, spaces as '-'.
    anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/troubleshooting.md") and anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/troubleshooting.md has no section {anchor!r} for {rule['alert']}"


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(optismith_[a-z_]+)", expression))


def test_alerts_use_only_exported_metrics() -> None:
    exported = exported_series_names()
    used = set().union(*(_metric_names(rule["expr"]) for rule in rules()))
    assert used and used <= set(exported), used - set(exported)


def test_dashboard_uses_only_exported_metrics() -> None:
    exported = exported_series_names()
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    expressions += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = set().union(*(_metric_names(e) for e in expressions))
    assert used and used <= set(exported), used - set(exported)


def test_metrics_doc_covers_every_metric_and_alert() -> None:
    doc = METRICS_DOC.read_text()
    for family in set(exported_series_names().values()):
        documented = [name for name, fam in exported_series_names().items() if fam == family and f"`{name}" in doc]
        assert documented, f"docs/metrics.md does not describe {family}"
    for alert in REQUIRED_ALERTS:
        assert f"`{alert}`" in doc, f"docs/metrics.md does not explain {alert}"
