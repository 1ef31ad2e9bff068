"""What the Prometheus Operator makes of a ServiceMonitor: the scrape config it generates (role: endpoints),
with its relabelling, and the discovered target with the `__meta_kubernetes_*` labels Kubernetes service
discovery would give it, for a static_config in a Prometheus on loopback.

Mirrors prometheus-operator's generateServiceMonitorConfig (pkg/prometheus/promcfg.go): keep on the
selector's labels and the endpoint's port name; `namespace`, `service`, `pod`, `container` from the target;
`job` from the service name, overridden by the jobLabel; `endpoint` from the port; honor_labels from the
endpoint. Nothing here is specific to Optismith.
"""

from __future__ import annotations

import re
from typing import Any


def _label(name: str) -> str:
    """A Kubernetes label key as service discovery spells it in a meta label."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def scrape_config(monitor: dict[str, Any], index: int = 0) -> dict[str, Any]:
    spec = monitor["spec"]
    endpoint = spec["endpoints"][index]
    meta = monitor["metadata"]
    relabel: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for key, value in sorted(spec["selector"].get("matchLabels", {}).items()):
        relabel.append({"action": "keep", "regex": f"({value});true", "source_labels": [
            f"__meta_kubernetes_service_label_{_label(key)}", f"__meta_kubernetes_service_labelpresent_{_label(key)}"]})
    relabel += [
        {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"]},
        {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                           "__meta_kubernetes_endpoint_address_target_name"],
         "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
        {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                           "__meta_kubernetes_endpoint_address_target_name"],
         "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
    ]
    if spec.get("jobLabel"):
        relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{_label(spec['jobLabel'])}"],
                        "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    config: dict[str, Any] = {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "honor_timestamps": True,
        "metrics_path": endpoint.get("path", "/metrics"),
        "relabel_configs": relabel,
    }
    for key, name in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout")):
        if endpoint.get(key):
            config[name] = endpoint[key]
    return config


def discovered_target(address: str, service: dict[str, Any], pod_name: str, container: str,
                      port_name: str) -> dict[str, Any]:
    """The static_config equivalent of one endpoints-role target: the address and its meta labels."""
    labels = {
        "__meta_kubernetes_namespace": service["metadata"]["namespace"],
        "__meta_kubernetes_service_name": service["metadata"]["name"],
        "__meta_kubernetes_endpoint_port_name": port_name,
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod_name,
        "__meta_kubernetes_endpoint_ready": "true",
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for key, value in service["metadata"].get("labels", {}).items():
        labels[f"__meta_kubernetes_service_label_{_label(key)}"] = value
        labels[f"__meta_kubernetes_service_labelpresent_{_label(key)}"] = "true"
    return {"targets": [address], "labels": labels}
