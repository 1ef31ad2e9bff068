"""Removal and upgrade: once the operator is gone, kopf's finalizer would keep every ModelOptimization from
being deleted; the uninstall hook's cleanup releases them. And the CRD upgrade of docs/install.md (server-side
apply of the new CRD over the old) serves the new schema to existing and new resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness import eventually
from tests.operator.cluster import CRD, Cluster, fake_spec

FINALIZER = "optismith.io/finalizer"


def test_cleanup_releases_resources_the_departed_operator_still_holds(cluster: Cluster, shared_dir: Path) -> None:
    cluster.start_kubelet()
    operator = cluster.start_operator()
    for name in ("kept", "stuck"):
        cluster.create(name, fake_spec(shared_dir))
    eventually(lambda: all(FINALIZER in (cluster.resource(n) or {}).get("metadata", {}).get("finalizers", [])
                           for n in ("kept", "stuck")), timeout=30, message="kopf did not add its finalizer")
    operator.terminate()  # what helm uninstall does to the Deployment
    cluster.api.kubectl("delete", "mo", "stuck", "-n", cluster.namespace, "--wait=false")
    stuck = cluster.resource("stuck")
    assert stuck is not None and stuck["metadata"].get("deletionTimestamp")  # it hangs: nobody removes the finalizer

    # The pre-delete hook's command (the Deployment does not exist here: it is treated as already stopped).
    done = subprocess.run([sys.executable, "-m", "optismith.controller.cleanup", "--namespace", "optismith-system",
                           "--deployment", "optismith", "-w", cluster.namespace],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "KUBECONFIG": str(cluster.api.kubeconfig)})
    assert done.returncode == 0, done.stderr
    assert "finalizer removed from 2 ModelOptimization(s)" in done.stdout
    eventually(lambda: cluster.resource("stuck") is None, timeout=10, message="the deleted resource stayed")
    kept = cluster.resource("kept")
    assert kept is not None and FINALIZER not in (kept["metadata"].get("finalizers") or [])
    assert kept["spec"]["model"]["uri"] == fake_spec(shared_dir)["model"]["uri"]  # the resource is untouched
    cluster.api.kubectl("delete", "mo", "kept", "-n", cluster.namespace, "--timeout=10s")
    assert cluster.resource("kept") is None


def test_crd_upgrade_by_server_side_apply(k8s_api: object, tmp_path: Path) -> None:
    from tests.harness import ApiServer

    assert isinstance(k8s_api, ApiServer)
    old = json.loads(json.dumps(CRD))
    version = old["spec"]["versions"][0]
    promotion = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["promotion"]
    del promotion["properties"]["keepVersions"]  # a field this release added
    version["additionalPrinterColumns"] = [c for c in version["additionalPrinterColumns"] if c["name"] != "Ready"]
    from optismith.controller.crd import _CrdDumper

    # Written as `make crd` writes it: kubectl reads YAML 1.2, where a bare 1e-3 is a number.
    for name, document in (("old.yaml", old), ("new.yaml", CRD)):
        (tmp_path / name).write_text(yaml.dump(document, Dumper=_CrdDumper, sort_keys=False))
    applied = k8s_api.kubectl("apply", "--server-side", "--validate=false", "-f", str(tmp_path / "old.yaml"))
    assert "serverside-applied" in applied.stdout
    k8s_api.create_namespace("ml")
    resource = {"apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
                "metadata": {"name": "digits", "namespace": "ml"},
                "spec": {"model": {"uri": "s3://models/m/"}, "output": {"uri": "s3://runs/"},
                         "promotion": {"uri": "s3://models/m-optimized", "keepVersions": 5}}}
    k8s_api.kubectl("apply", "--server-side", "--validate=false", "-f", "-", input=yaml.safe_dump(resource))
    stored = json.loads(k8s_api.kubectl("get", "mo", "digits", "-n", "ml", "-o", "json").stdout)
    assert "keepVersions" not in stored["spec"]["promotion"]  # pruned: the old schema does not know it

    # docs/install.md: `helm show crds <chart> | kubectl apply --server-side --force-conflicts -f -`
    upgraded = k8s_api.kubectl("apply", "--server-side", "--force-conflicts", "--validate=false", "-f",
                               str(tmp_path / "new.yaml"))
    assert "serverside-applied" in upgraded.stdout
    k8s_api.kubectl("apply", "--server-side", "--validate=false", "-f", "-", input=yaml.safe_dump(resource))
    stored = json.loads(k8s_api.kubectl("get", "mo", "digits", "-n", "ml", "-o", "json").stdout)
    assert stored["spec"]["promotion"]["keepVersions"] == 5
    header = k8s_api.kubectl("get", "mo", "-n", "ml", "-o", "wide").stdout.splitlines()[0].split()
    assert header[:3] == ["NAME", "READY", "REASON"] and {"OBJECTIVE", "TARGET", "RUN"} <= set(header)
