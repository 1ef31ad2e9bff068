"""The whole product path: kubectl apply of the digits ModelOptimization → the operator plans Jobs → the
kubelet stand-in runs the real worker (TensorFlow pipeline) against SeaweedFS → status, events, promotion,
and Prometheus scraping the operator's metrics; every dashboard query returns data; no secret leaks."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.cluster import Cluster, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.operator, pytest.mark.slow, pytest.mark.tf, pytest.mark.s3]


def upload_tree(client: Any, bucket: str, prefix: str, directory: Path) -> None:
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(directory).as_posix()}")


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((ROOT / "charts" / "optismith" / "files" / "dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((panel["title"], target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and query.get("query", "").startswith("label_values("):
            match = re.match(r"label_values\((.*),\s*\w+\)$", query["query"])
            assert match, query
            queries.append((f"variable {variable['name']}", match.group(1)))
    return queries


def test_digits_end_to_end_with_kubectl_seaweedfs_and_prometheus(
    cluster: Cluster, s3_server: Any, digits_dir: Path, prometheus: Any, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket("e2e-digits")
    s3 = s3_server.client()
    upload_tree(s3, bucket, "models/digits", digits_dir / "model")
    for name in ("calibration.npz", "eval.npz"):
        s3.upload_file(str(digits_dir / "data" / name), bucket, f"data/{name}")

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-creds", "namespace": cluster.namespace},
        "data": {
            "AWS_ACCESS_KEY_ID": base64.b64encode(s3_server.access_key.encode()).decode(),
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(s3_server.secret_key.encode()).decode(),
        },
    }
    cluster.api.client.create(f"/api/v1/namespaces/{cluster.namespace}/secrets", secret)

    kubelet = cluster.start_kubelet(real_worker=True)
    metrics_port = free_port()
    operator = cluster.start_operator(env={**s3_server.env(), "OPTISMITH_METRICS_PORT": str(metrics_port)})
    prom = prometheus([f"127.0.0.1:{metrics_port}"])

    manifest = {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "digits", "namespace": cluster.namespace},
        "spec": {
            "model": {"uri": f"s3://{bucket}/models/digits/"},
            "storage": {
                "endpoint": s3_server.endpoint,
                "region": s3_server.region,
                "pathStyle": True,
                "credentialsSecret": {"name": "s3-creds"},
            },
            "variants": ["tf-frozen", "tflite-fp32", "tflite-int8", "onnx-fp32"],
            "calibration": {"uri": f"s3://{bucket}/data/calibration.npz", "samples": 64},
            "evaluation": {"uri": f"s3://{bucket}/data/eval.npz"},
            "benchmark": {
                "batchSizes": [1],
                "threads": [1],
                "timeBudget": "500ms",
                "minRounds": 10,
                "scenarios": ["singleStream", "offline"],
            },
            "output": {"uri": f"s3://{bucket}/runs"},
            "promotion": {"uri": f"s3://{bucket}/promoted/digits"},
        },
    }
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(manifest))
    cluster.api.kubectl("apply", "--validate=false", "-f", str(path))
    waited = cluster.api.kubectl(
        "wait", "--for=condition=Succeeded", "mo/digits", "-n", cluster.namespace, "--timeout=600s", check=False,
        timeout=620,  # kubectl's own --timeout is the bound, not the helper's default minute
    )
    body = cluster.resource("digits")
    diagnosis = f"{waited.stdout}{waited.stderr}\n{json.dumps(body, indent=1)}\n{operator.logs()[-3000:]}"
    assert waited.returncode == 0, diagnosis

    status = body["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: c["status"] for t, c in conditions.items()} == {
        "Succeeded": "True",
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "AccuracyGatePassed": "True",
        "Promoted": "True",
    }
    assert all(c["observedGeneration"] == 1 for c in conditions.values())
    assert status["observedGeneration"] == 1
    winner = status["winner"]["variant"]
    assert winner in {"tf-savedmodel", "tf-frozen", "tflite-fp32", "tflite-int8", "onnx-fp32"}
    assert {v["name"] for v in status["variants"]} >= {"tf-savedmodel", "tflite-fp32"}
    promoted = status["promoted"]
    assert promoted["uri"] == f"s3://{bucket}/promoted/digits" and promoted["digest"].startswith("sha256:")
    promotion = json.loads(s3.get_object(Bucket=bucket, Key="promoted/digits/promotion.json")["Body"].read())
    assert promotion["variant"] == winner and promotion["digest"] == promoted["digest"]
    run_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/ml/digits/gen-1/")["Contents"]]
    assert "runs/ml/digits/gen-1/manifest.json" in run_keys and "runs/ml/digits/gen-1/report.md" in run_keys

    table = cluster.api.kubectl("get", "mo", "digits", "-n", cluster.namespace).stdout
    assert "True" in table and winner in table

    # Prometheus scraped the operator: the latency series of this resource, and every dashboard query.
    latency = prom.wait_for(f'optismith_benchmark_latency_seconds{{namespace="ml",name="digits",variant="{winner}"}}')
    assert {r["metric"]["quantile"] for r in latency} == {"0.5", "0.99"}
    for title, expression in dashboard_queries():
        concrete = (
            expression.replace("$__rate_interval", "1m")
            .replace("$namespace", "ml")
            .replace("$name", "digits")
            .replace("$target", "cpu")
        )
        assert prom.wait_for(concrete, timeout=20), f"dashboard panel {title!r} returned no data: {concrete}"

    # Secrets never reach status, events, logs or the run directory.
    secret_value = s3_server.secret_key
    events = cluster.api.list("events", cluster.namespace)
    haystacks = {"status": json.dumps(body), "events": json.dumps(events), "operator log": operator.logs()}
    for run in kubelet.runs:
        haystacks[f"pod {run.name} log"] = kubelet.logs(run.namespace, run.name) + run.message
    for key in run_keys:
        haystacks[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("latin-1")
    leaked = [where for where, text in haystacks.items() if secret_value in text]
    assert not leaked, f"the S3 secret key appears in {leaked}"
