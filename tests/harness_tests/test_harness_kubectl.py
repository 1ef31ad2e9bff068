"""kubectl against the emulator: apply, get (with printer columns), wait, delete."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from tests.harness import ApiServer
from tests.harness_tests.harness_samples import widget, widget_crd

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


def test_apply_get_wait_delete(k8s_api: ApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "crd.yaml"
    manifest.write_text(yaml.safe_dump(widget_crd()))
    assert "created" in k8s_api.kubectl("apply", "--validate=false", "-f", str(manifest)).stdout

    obj = widget("w1", namespace="default", size=1)
    assert "created" in k8s_api.kubectl("apply", "--validate=false", "-f", "-", input=yaml.safe_dump(obj)).stdout
    obj["spec"]["size"] = 2
    assert "configured" in k8s_api.kubectl("apply", "--validate=false", "-f", "-", input=yaml.safe_dump(obj)).stdout
    fetched = json.loads(k8s_api.kubectl("get", "wd", "w1", "-o", "json").stdout)
    assert fetched["spec"] == {"size": 2} and fetched["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in fetched["metadata"]["annotations"]
    assert (
        k8s_api.history.patches(resource="widgets", user_agent="kubectl")[0].content_type
        == "application/merge-patch+json"
    )

    def finish() -> None:
        k8s_api.client.patch(
            "/apis/example.io/v1/namespaces/default/widgets/w1/status",
            {"status": {"phase": "Done", "conditions": [{"type": "Succeeded", "status": "True"}]}},
        )

    timer = threading.Timer(0.5, finish)
    timer.start()
    waited = k8s_api.kubectl("wait", "--for=condition=Succeeded", "widget/w1", "--timeout=10s")
    timer.join()
    assert "condition met" in waited.stdout
    assert k8s_api.history.watches(resource="widgets", user_agent="kubectl")

    table = k8s_api.kubectl("get", "widgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "AGE"]
    assert table[1].split()[:2] == ["w1", "Done"]

    assert "deleted" in k8s_api.kubectl("delete", "wd", "w1").stdout
    assert k8s_api.get("widgets", "default", "w1") is None
    assert "No resources found" in k8s_api.kubectl("get", "wd").stderr


def test_kubectl_sees_builtins_and_namespaces(k8s_api: ApiServer) -> None:
    k8s_api.kubectl("create", "namespace", "team-a")
    k8s_api.kubectl("create", "configmap", "settings", "-n", "team-a", "--from-literal=level=3")
    names = k8s_api.kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/team-a" in names
    data = json.loads(k8s_api.kubectl("get", "cm", "settings", "-n", "team-a", "-o", "json").stdout)
    assert data["data"] == {"level": "3"}
    missing = k8s_api.kubectl("get", "cm", "nope", "-n", "team-a", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
