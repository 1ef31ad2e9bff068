"""The Helm chart renders, lints and validates strictly against Kubernetes 1.30, and what it renders is
what the operator reads: CLI arguments, OPTISMITH_* settings, RBAC rules from one file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "optismith"
KUBE_VERSION = "1.30.0"  # the oldest version the chart supports (Chart.yaml kubeVersion)
RELEASE, NAMESPACE = "optismith", "optismith-system"

CUSTOM: dict[str, Any] = {
    "rbac": {"scope": "namespaced"},
    "watchNamespaces": ["ml-team-a", "ml-team-b"],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/optismith"}},
    "s3": {
        "existingSecret": "optismith-s3",
        "accessKeyIdKey": "id",
        "secretAccessKeyKey": "secret",
        "endpoint": "http://seaweedfs.storage:8333",
        "region": "eu-west-1",
        "pathStyle": True,
    },
    "image": {"repository": "registry.example.com/optismith/operator", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
    "worker": {
        "image": {
            "cpu": {"repository": "registry.example.com/optismith/worker-cpu", "tag": "0.1.0-rc1"},
            "gpu": {"repository": "registry.example.com/optismith/worker-gpu", "tag": "0.1.0-rc1"},
        },
        "resources": {
            "cpu": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
            "gpu": {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"cpu": "8", "memory": "32Gi"}},
        },
        "serviceAccountName": "optismith-worker",
        "extraEnv": {"OPTISMITH_S3_MAX_ATTEMPTS": "8"},
    },
    "operator": {"maxJobs": 6, "maxGpuJobs": 2, "reconcileInterval": 10},
    "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "grafana": {"dashboard": {"enabled": True, "namespace": "monitoring", "folder": "ML platform"}},
    "workerNetworkPolicy": {"objectStore": {"cidrs": ["10.20.0.0/16"], "ports": [8333]}},
}
VALUE_SETS = {"default": {}, "custom": CUSTOM}

# kubernetes-validate knows only built-in kinds. The Prometheus operator's CRDs get a minimal schema
# of the fields we set, strict (no unknown fields), so a typo still fails.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRING_MAP},
}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": _STRING_MAP},
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "honorLabels": {"type": "boolean"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "interval": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["alert", "expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "expr": {"type": "string"},
                                            "for": {"type": "string"},
                                            "labels": _STRING_MAP,
                                            "annotations": _STRING_MAP,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def chart() -> Any:
    loaded = helm.Chart.load(CHART)
    yield loaded
    loaded.close()


def render(chart: Any, values: dict[str, Any], *, hooks: bool = False) -> list[dict[str, Any]]:
    """The release's manifests; with `hooks`, only its Helm hooks (what install/uninstall run around it)."""
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    documents = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        documents += [d for d in yaml.safe_load_all(text) if d]
    return [d for d in documents if ("helm.sh/hook" in (d["metadata"].get("annotations") or {})) == hooks]


@pytest.fixture(scope="module")
def rendered(chart: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: render(chart, values) for name, values in VALUE_SETS.items()}


def one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0])


def env_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(documents)["env"]}


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_helm_lint_is_clean(values: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[values], strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_every_manifest_validates_strictly(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    kinds = set()
    for document in rendered[values]:
        kinds.add(document["kind"])
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            jsonschema.validate(document, MONITORING_SCHEMAS[document["kind"]])
        else:
            kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
    expected = {"Deployment", "ServiceAccount", "Service", "ClusterRole", "ClusterRoleBinding"}
    if values == "custom":
        expected |= {"Role", "RoleBinding", "ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"}
    assert kinds == expected


def test_uninstall_hook_stops_the_operator_then_releases_the_finalizers(chart: Any) -> None:
    hooks = render(chart, CUSTOM, hooks=True)
    for document in hooks:
        kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
        assert document["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
        assert "hook-succeeded" in document["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    job = one(hooks, "Job")
    weights = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in hooks}
    assert all(w < weights["Job"] for kind, w in weights.items() if kind != "Job")  # RBAC exists first
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "optismith.controller.cleanup"]
    arguments = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in container["args"]}
    assert arguments["--deployment"] == one(render(chart, CUSTOM), "Deployment")["metadata"]["name"]
    assert arguments["--namespace"] == NAMESPACE
    assert [a for a in container["args"] if a.startswith("--watch-namespace=")] == [
        f"--watch-namespace={ns}" for ns in CUSTOM["watchNamespaces"]]
    role = one(hooks, "ClusterRole")
    assert role["rules"] == [{"apiGroups": ["optismith.io"], "resources": ["modeloptimizations"],
                              "verbs": ["list", "patch"]}]
    assert render(chart, {"cleanupOnUninstall": {"enabled": False}}, hooks=True) == []


def test_strict_validation_catches_an_unknown_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # Proof that strict mode is on: the same Deployment with one misspelt field is rejected.
    deployment = json.loads(json.dumps(one(rendered["default"], "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    monitor = json.loads(json.dumps(one(rendered["custom"], "ServiceMonitor")))
    monitor["spec"]["endpoint"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, MONITORING_SCHEMAS["ServiceMonitor"])


def test_chart_crd_is_the_generated_crd() -> None:
    chart_crd = CHART / "crds" / "modeloptimizations.optismith.io.yaml"
    assert chart_crd.read_bytes() == (ROOT / "crds" / "modeloptimizations.optismith.io.yaml").read_bytes(), (
        "charts/optismith/crds/ is stale: run `make crd`"
    )
    assert [p.name for p in (CHART / "crds").iterdir()] == [chart_crd.name]
    kubernetes_validate.validate(yaml.safe_load(chart_crd.read_text()), KUBE_VERSION, strict=True)


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"rbac": {"scope": "everything"}}, "/rbac/scope"),
        ({"rbac": {"scope": "namespaced"}}, "/watchNamespaces"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
        ({"operator": {"maxJobs": 0}}, "/operator/maxJobs"),
        ({"worker": {"resources": {"cpu": {"request": {"cpu": "1"}}}}}, "/worker/resources/cpu"),
        ({"s3": {"existingSecret": "x", "endpoint": "seaweedfs:8333"}}, "/s3/endpoint"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "/metrics/serviceMonitor/enabled"),
        ({"imagePullPolicy": "Always"}, "imagePullPolicy"),
    ],
)
def test_values_schema_rejects_bad_values(chart: Any, values: dict[str, Any], error: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=error):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_operator_arguments_parse_with_the_cli(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    from optismith.cli import build_parser

    spec = container(rendered[values])
    args = build_parser().parse_args(spec["args"])
    assert args.handler.__name__ == "cmd_operator"
    watch = VALUE_SETS[values].get("watchNamespaces", [])
    assert (args.namespace or []) == watch and args.all_namespaces is (not watch)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert args.liveness == f"http://0.0.0.0:{ports['healthz']}/healthz"
    assert args.metrics_port == ports["http-metrics"] == 9090
    for probe in (spec["livenessProbe"], spec["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "healthz"}


def test_operator_settings_come_from_the_values(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from optismith.controller.settings import OperatorSettings

    env = env_of(rendered["custom"])
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    worker = CUSTOM["worker"]
    assert (settings.max_jobs, settings.max_gpu_jobs, settings.reconcile_interval, settings.metrics_port) == (
        6, 2, 10.0, 9090)
    assert settings.worker().cpu_image == "registry.example.com/optismith/worker-cpu:0.1.0-rc1"
    assert settings.worker().gpu_image == "registry.example.com/optismith/worker-gpu:0.1.0-rc1"
    assert settings.worker().cpu_resources == worker["resources"]["cpu"]
    assert settings.worker().gpu_resources == worker["resources"]["gpu"]
    assert settings.worker().command == ("optismith",)
    assert settings.worker().service_account == "optismith-worker"
    # Workers get the operator's S3 endpoint settings; an explicit worker.extraEnv wins.
    assert dict(settings.worker().extra_env) == {
        "OPTISMITH_S3_ENDPOINT": "http://seaweedfs.storage:8333",
        "AWS_REGION": "eu-west-1",
        "OPTISMITH_S3_PATH_STYLE": "true",
        "OPTISMITH_S3_MAX_ATTEMPTS": "8",
    }


def test_default_worker_settings_match_the_operator_defaults(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from optismith.controller.settings import OperatorSettings
    from optismith.controller.specs import WorkerDefaults

    for name, value in env_of(rendered["default"]).items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.worker() == WorkerDefaults()
    defaults = OperatorSettings.model_fields
    assert (settings.max_jobs, settings.max_gpu_jobs, settings.reconcile_interval) == (
        defaults["max_jobs"].default, defaults["max_gpu_jobs"].default, defaults["reconcile_interval"].default)


def test_s3_credentials_from_an_existing_secret_or_workload_identity(rendered: dict[str, list[dict[str, Any]]]) -> None:
    env = env_of(rendered["custom"])
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "optismith-s3", "key": "id"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "optismith-s3", "key": "secret"}}
    assert (env["OPTISMITH_S3_ENDPOINT"], env["AWS_REGION"], env["OPTISMITH_S3_PATH_STYLE"]) == (
        "http://seaweedfs.storage:8333",
        "eu-west-1",
        "true",
    )
    account = one(rendered["custom"], "ServiceAccount")
    assert account["metadata"]["annotations"] == CUSTOM["serviceAccount"]["annotations"]
    assert (
        one(rendered["custom"], "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )
    default_env = env_of(rendered["default"])
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPTISMITH_S3_ENDPOINT"} & set(default_env)
    assert "annotations" not in one(rendered["default"], "ServiceAccount")["metadata"]


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_operator_pod_is_locked_down(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    deployment = one(rendered[values], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    resources = pod["containers"][0]["resources"]
    assert resources == (
        CUSTOM["resources"]
        if values == "custom"
        else {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
    )
    image = pod["containers"][0]["image"]
    assert image == (
        "registry.example.com/optismith/operator:0.1.0-rc1"
        if values == "custom"
        else "ghcr.io/optismith/operator:0.1.0"
    )


def _rules() -> dict[str, list[dict[str, Any]]]:
    return dict(yaml.safe_load((CHART / "files" / "rbac.yaml").read_text()))


def test_cluster_scope_rbac_is_the_single_rules_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = _rules()
    documents = rendered["default"]
    role = one(documents, "ClusterRole", "optismith")
    assert role["rules"] == rules["clusterScoped"] + rules["namespaced"]
    binding = one(documents, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "optismith", "namespace": NAMESPACE}]
    assert not [d for d in documents if d["kind"] in ("Role", "RoleBinding")]


def test_namespaced_rbac_grants_only_the_watched_namespaces(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = _rules()
    documents = rendered["custom"]
    # Roles cannot grant cluster-scoped objects: only kopf's read-only discovery stays cluster-wide.
    assert one(documents, "ClusterRole", "optismith")["rules"] == rules["clusterScoped"]
    assert all(r["verbs"] == ["list", "watch"] for r in rules["clusterScoped"])
    roles = [d for d in documents if d["kind"] == "Role"]
    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == CUSTOM["watchNamespaces"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == CUSTOM["watchNamespaces"]
    assert all(r["rules"] == rules["namespaced"] for r in roles)
    account = one(documents, "ServiceAccount")["metadata"]["name"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[0]["metadata"]["name"],
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


def test_tenants_get_aggregated_view_and_edit_roles(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = _rules()
    view = one(rendered["default"], "ClusterRole", "optismith-view")
    edit = one(rendered["default"], "ClusterRole", "optismith-edit")
    assert view["rules"] == rules["tenantView"] and edit["rules"] == rules["tenantEdit"]
    labels = {k: v for k, v in view["metadata"]["labels"].items() if k.startswith("rbac.authorization.k8s.io/")}
    assert labels == {f"rbac.authorization.k8s.io/aggregate-to-{r}": "true" for r in ("view", "edit", "admin")}
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]  # viewers cannot edit
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    # Tenants never get the operator's powers: Jobs, Pods, Secrets stay with the operator.
    assert {r for rule in view["rules"] + edit["rules"] for r in rule["resources"]} <= {
        "modeloptimizations", "modeloptimizations/status"}


def test_image_policy_and_sts_role_reach_the_operator(chart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from optismith.controller.settings import OperatorSettings

    role = "arn:aws:iam::123456789012:role/optismith-worker"
    documents = render(chart, {"worker": {"imageOverride": True, "allowedImages": ["registry.example.com/ml/*"],
                                          "s3RoleArn": role, "s3CredentialsSeconds": 1800}})
    for name, value in env_of(documents).items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert (settings.worker_image_override, settings.worker_allowed_images) == (True, ["registry.example.com/ml/*"])
    assert (settings.worker_s3_role_arn, settings.worker_s3_credentials_seconds) == (role, 1800)
    # Only then may the operator create Secrets (the Jobs' minted credentials), and only create them.
    secrets = [r for r in one(documents, "ClusterRole", "optismith")["rules"] if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert not [r for r in one(render(chart, {}), "ClusterRole", "optismith")["rules"] if "secrets" in r["resources"]]


def test_monitoring_objects_are_optional(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert not [d for d in rendered["default"] if d["kind"] in ("ServiceMonitor", "PrometheusRule", "ConfigMap")]
    documents = rendered["custom"]
    service = one(documents, "Service")
    monitor = one(documents, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "http-metrics"
    # The alerts match on job: the jobLabel gives job="optismith-operator" whatever the release name.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "optismith-operator"
    assert (
        service["spec"]["selector"].items()
        <= one(documents, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_prometheus_rule_is_the_alerts_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rule = one(rendered["custom"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())


def test_runbook_urls_follow_the_base_url_value(chart: Any) -> None:
    values = {"metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example.com/optismith/"}}}
    rule = one(render(chart, values), "PrometheusRule")
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(u.startswith("https://wiki.example.com/optismith/troubleshooting.md#") for u in urls)


def test_the_service_monitor_keeps_the_resources_namespace_label(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # tests/charts/test_prometheus_operator.py shows what happens without it, through a real Prometheus.
    assert one(rendered["custom"], "ServiceMonitor")["spec"]["endpoints"][0]["honorLabels"] is True


def test_dashboard_config_map(rendered: dict[str, list[dict[str, Any]]]) -> None:
    config_map = one(rendered["custom"], "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    # kube-prometheus-stack's sidecar files the dashboard under the folder its folderAnnotation names.
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML platform"}
    assert config_map["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(config_map["data"]["optismith.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())


def test_dashboard_variables_and_panels() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "name", "target"} <= set(variables)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}
    for metric in (
        "optismith_benchmark_latency_seconds",
        "optismith_variant_speedup_ratio",
        "optismith_variant_size_bytes",
        "optismith_variant_accuracy_delta_ratio",
        "optismith_stage_duration_seconds_bucket",
        'optismith_jobs_finished_total{result="failed"}',
        "optismith_queued_steps",
        "optismith_resources",
        "optismith_reconcile_errors_total",
    ):
        assert any(metric in expr for expr in exprs.values()), metric
    for title, expr in exprs.items():
        if "optismith_benchmark" in expr or "optismith_variant" in expr:
            assert all(f'{label}=~"${label}"' in expr for label in ("namespace", "name", "target")), title
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_notes_recommend_a_wait_that_returns_on_failure(chart: Any) -> None:
    notes = next(text for path, text in chart.render({}, name=RELEASE, namespace=NAMESPACE, is_install=True).items()
                 if path.endswith("NOTES.txt"))
    for document in (notes, (ROOT / "docs" / "install.md").read_text()):
        # Succeeded=True also when no variant passed, and Ready alone waits out its timeout on a failure.
        assert "--for=condition=Succeeded" not in document
        assert """--for=jsonpath='{.status.conditions[?(@.type=="Reconciling")].status}'=False""" in document
    assert "--server-side --force-conflicts" in notes
