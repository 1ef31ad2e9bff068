"""The operator's metrics through a real Prometheus scraping it the way the Prometheus Operator does from the
chart's ServiceMonitor (kube-prometheus-stack): every dashboard query returns series for the resource's own
namespace, and every alert is evaluated against those series. Without honorLabels the resource's namespace
is lost to the target's, which is what the chart's default prevents."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.controller.metrics import OperatorMetrics
from tests.charts.prometheus_operator import discovered_target, scrape_config
from tests.charts.test_chart import CUSTOM, NAMESPACE, one, render
from tests.controller.controller_results import RESULTS, run_results
from tests.fixtures.prometheus import Prometheus, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "optismith" / "files" / "dashboard.json"
ALERTS = ROOT / "charts" / "optismith" / "files" / "alerts.yaml"
RESOURCE_NAMESPACE = "ml"
CONCRETE = {"$__rate_interval": "30s", "$namespace": RESOURCE_NAMESPACE, "$name": "digits", "$target": "cpu"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel or variable, PromQL) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"]
               for target in panel.get("targets", []) if target.get("expr")]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and query.get("query", "").startswith("label_values("):
            match = re.match(r"label_values\((.*),\s*\w+\)$", query["query"])
            assert match, query
            queries.append((f"variable {variable['name']}", match.group(1)))
    return queries


def concrete(expression: str) -> str:
    for variable, value in CONCRETE.items():
        expression = expression.replace(variable, value)
    return expression


@pytest.fixture(scope="module")
def chart_objects() -> dict[str, dict[str, Any]]:
    import helm_python as helm

    chart = helm.Chart.load(ROOT / "charts" / "optismith")
    try:
        documents = render(chart, CUSTOM)
    finally:
        chart.close()
    return {kind: one(documents, kind) for kind in ("ServiceMonitor", "Service", "Deployment")}


@pytest.fixture
def operator_metrics() -> Iterator[tuple[OperatorMetrics, int]]:
    """The operator's metrics with two finished resources in namespace ml: one with a winner, one without."""
    metrics = OperatorMetrics()
    metrics.observe_results(RESOURCE_NAMESPACE, "digits", run_results())
    metrics.observe_results(RESOURCE_NAMESPACE, "strict", run_results({
        **RESULTS["selection"], "winner": None, "winner_target": None, "outcome": "no-variant-passed",
        "message": "no variant passed"}))
    metrics.set_phase(RESOURCE_NAMESPACE, "digits", "Succeeded")
    metrics.set_phase(RESOURCE_NAMESPACE, "broken", "Failed")
    metrics.set_queued(RESOURCE_NAMESPACE, "waiting", 2)
    port = free_port()
    metrics.serve(port, addr="127.0.0.1")
    yield metrics, port


def start_prometheus(tmp_path: Path, objects: dict[str, dict[str, Any]], port: int, *, honor_labels: bool | None = None,
                     rules: Path | None = None) -> Prometheus:
    monitor = json.loads(json.dumps(objects["ServiceMonitor"]))
    endpoint = monitor["spec"]["endpoints"][0]
    endpoint.update(interval="1s", scrapeTimeout="1s")
    if honor_labels is not None:
        endpoint["honorLabels"] = honor_labels
    config = scrape_config(monitor)
    pod = f"{objects['Deployment']['metadata']['name']}-6c9d8b7f4-x2x4k"
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["name"]
    config["static_configs"] = [discovered_target(f"127.0.0.1:{port}", objects["Service"], pod, container,
                                                  endpoint["port"])]
    workdir = tmp_path / f"prometheus-{honor_labels}"
    workdir.mkdir()
    return Prometheus(workdir, [], rule_files=[rules] if rules else None, scrape_configs=[config]).start()


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_dashboard_and_alerts_under_prometheus_operator_relabelling(
    chart_objects: dict[str, dict[str, Any]], operator_metrics: tuple[OperatorMetrics, int], tmp_path: Path
) -> None:
    metrics, port = operator_metrics
    # The alerts as they are, less their `for:` (promtool tests the durations): what fires now, and with which labels.
    alerts = yaml.safe_load(ALERTS.read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump(alerts))
    prom = start_prometheus(tmp_path, chart_objects, port, rules=rules)
    try:
        up = prom.wait_for('up == 1')
        assert up, "the target was not scraped"
        target = up[0]["metric"]
        assert (target["job"], target["namespace"], target["service"], target["endpoint"], target["container"]) == (
            "optismith-operator", NAMESPACE, "optismith-metrics", "http-metrics", "operator")
        # Counters move after the first scrape, as in a running operator, so increase() sees them.
        for _ in range(5):
            metrics.job_finished("measure", "failed", 12.0)
            metrics.jobs_created.labels("measure").inc()
            metrics.reconcile_errors.labels("ApiError").inc()
            time.sleep(1.1)

        for title, expression in dashboard_queries():
            query = concrete(expression)
            series = prom.wait_for(query, timeout=20)
            assert series, f"dashboard {title!r} returned no data: {query}"
            if "$namespace" in expression:
                found = {s["metric"].get("namespace") for s in series if "namespace" in s["metric"]}
                assert found == {RESOURCE_NAMESPACE}, (title, series)
                assert not [s for s in series if "exported_namespace" in s["metric"]], (title, series)
        namespaces = {s["metric"]["namespace"] for s in prom.query("optismith_winner_info")}
        assert namespaces == {RESOURCE_NAMESPACE}  # the dashboard's $namespace lists the resource's namespace

        expected = {"OptismithOptimizationsFailing", "OptismithAccuracyGateFailing", "OptismithJobsQueued",
                    "OptismithReconcileErrors"}

        def firing() -> dict[str, list[dict[str, str]]]:
            found: dict[str, list[dict[str, str]]] = {}
            for alert in prom.alerts():
                if alert["state"] == "firing":
                    found.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
            return found if set(found) == expected else {}

        fired = eventually(firing)
        assert set(fired) == expected, prom.alerts()
        gate = fired["OptismithAccuracyGateFailing"]
        assert [(a["namespace"], a["name"]) for a in gate] == [(RESOURCE_NAMESPACE, "strict")]
        assert {a.get("signal") for a in fired["OptismithOptimizationsFailing"]} == {"resources", "jobs"}
        assert "OptismithOperatorDown" not in fired  # the target is up
    finally:
        prom.stop()


def test_without_honor_labels_the_resources_namespace_is_lost(
    chart_objects: dict[str, dict[str, Any]], operator_metrics: tuple[OperatorMetrics, int], tmp_path: Path
) -> None:
    _, port = operator_metrics
    prom = start_prometheus(tmp_path, chart_objects, port, honor_labels=False)
    try:
        renamed = prom.wait_for(f'optismith_winner_info{{exported_namespace="{RESOURCE_NAMESPACE}"}}')
        assert renamed and {s["metric"]["namespace"] for s in renamed} == {NAMESPACE}
        assert prom.query(f'optismith_winner_info{{namespace="{RESOURCE_NAMESPACE}"}}') == []
    finally:
        prom.stop()
