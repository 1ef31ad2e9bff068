"""S3 (SeaweedFS) going down under the real worker (TensorFlow pipeline) run by the operator.

Download: the store dies as the prepare Job starts; every attempt fails with a StorageError naming the
endpoint, the run fails without ever looking complete, and once the store is back a new generation succeeds.
Upload: the store dies as soon as prepare has written its first object; the partial run is retried until
the store is back, and the finished run's manifest verifies (nothing from the broken attempts is lost or
left unaccounted for). Model and run keys carry unicode and spaces on the way. Neither test lets the S3
secret reach status, events, logs or the run directory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optismith.storage.s3 import S3Settings, S3Storage
from tests.harness import eventually
from tests.operator.cluster import Cluster
from tests.reliability.reliability_kit import (
    CaseLedger,
    assert_no_orphaned_or_duplicated_jobs,
    stalled,
    succeeded,
    wait_for_pid,
)

pytestmark = [pytest.mark.operator, pytest.mark.slow, pytest.mark.tf, pytest.mark.s3]
SECRET = "s3-creds"


@pytest.fixture
def store_server(s3_server: Any) -> Iterator[Any]:
    """The session's SeaweedFS, brought back up whatever the test did to it."""
    s3_server.ensure_up()
    yield s3_server
    s3_server.ensure_up()


def stage_inputs(s3: Any, bucket: str, model_prefix: str, digits_dir: Path) -> None:
    model = digits_dir / "model"
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{model_prefix}/{path.relative_to(model).as_posix()}")
    s3.upload_file(str(digits_dir / "data" / "eval.npz"), bucket, "data/eval.npz")


def worker_spec(server: Any, bucket: str, model_prefix: str, output_prefix: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": f"s3://{bucket}/{model_prefix}/"},
        "storage": {
            "endpoint": server.endpoint,
            "region": server.region,
            "pathStyle": True,
            "credentialsSecret": {"name": SECRET},
        },
        "variants": ["tf-savedmodel"],
        "evaluation": {"uri": f"s3://{bucket}/data/eval.npz", "samples": 200},
        "benchmark": {
            "batchSizes": [1],
            "threads": [1],
            "timeBudget": "200ms",
            "minRounds": 3,
            "warmupRuns": 1,
            "scenarios": ["singleStream"],
        },
        "output": {"uri": f"s3://{bucket}/{output_prefix}"},
        "execution": {"backoff": "1s", "maxAttempts": 2},
    }
    spec.update(overrides)
    return spec


def create_secret(cluster: Cluster, server: Any) -> None:
    data = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    cluster.api.client.create(
        f"/api/v1/namespaces/{cluster.namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": cluster.namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


def _s3_store(server: Any, uri: str) -> Any:
    settings = S3Settings(endpoint=server.endpoint, region=server.region, path_style=True)
    store = S3Storage(uri, settings)
    store._client = server.client()  # the admin identity: the test reads what the worker left behind
    return store


def assert_secret_never_leaked(cluster: Cluster, kubelet: Any, operator: Any, server: Any, bucket: str) -> None:
    s3 = server.client()
    haystacks = {
        "resources": json.dumps(cluster.api.list("modeloptimizations", cluster.namespace)),
        "events": json.dumps(cluster.api.list("events", cluster.namespace)),
        "jobs": json.dumps(cluster.api.list("jobs", cluster.namespace)),
        "operator log": operator.logs(),
    }
    for run in kubelet.runs:
        haystacks[f"pod {run.name}"] = kubelet.logs(run.namespace, run.name) + run.message
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            haystacks[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("latin-1")
    leaked = [where for where, text in haystacks.items() if server.secret_key in text]
    assert not leaked, f"the S3 secret key appears in {leaked}"
    assert len(haystacks) > 10  # the search covered the run's objects, not an empty bucket


def test_s3_down_during_prepare_download_fails_clearly_then_a_new_generation_succeeds(
    cluster: Cluster, store_server: Any, digits_dir: Path, ledger: CaseLedger
) -> None:
    server = store_server
    bucket = server.make_bucket("reliability-download")
    stage_inputs(server.client(), bucket, "models/digits", digits_dir)
    create_secret(cluster, server)
    kubelet = cluster.start_kubelet(real_worker=True)
    operator = cluster.start_operator(env=server.env())

    with ledger.fault("S3 stopped during the prepare download", count=2):
        cluster.create("s3down", worker_spec(server, bucket, "models/digits", "runs"))
        wait_for_pid(kubelet, "s3down-g1-prepare-a1-")
        server.kill()  # the worker is still importing TensorFlow: its first S3 request meets a dead store
        failed = eventually(
            lambda: stalled(cluster, "s3down"),
            timeout=120,
            message=lambda: f"{cluster.resource('s3down')}\n{operator.logs()[-3000:]}",
        )
        assert failed["reason"] == "StorageError", failed
        assert f"S3 endpoint {server.endpoint} unreachable" in failed["message"], failed["message"]
        assert "prepare failed after 2 attempt(s)" in failed["message"]
        assert cluster.resource("s3down")["status"]["phase"] == "Failed"
        assert sorted(j["metadata"]["name"] for j in cluster.jobs("s3down")) == [
            "s3down-g1-prepare-a1",
            "s3down-g1-prepare-a2",
        ]
        assert all(r.exit_code == 5 for r in kubelet.runs), [(r.name, r.exit_code) for r in kubelet.runs]
        assert_no_orphaned_or_duplicated_jobs(cluster)

        server.start()
        gen1 = _s3_store(server, f"s3://{bucket}/runs/ml/s3down/gen-1")
        assert ledger.check_run(gen1) == "incomplete"  # a failed run never looks complete

        path = cluster.api.path("modeloptimizations", cluster.namespace, "s3down")
        cluster.api.client.patch(path, {"spec": {"benchmark": {"minRounds": 4}}})
        eventually(
            lambda: succeeded(cluster, "s3down"),
            timeout=240,
            message=lambda: f"{cluster.resource('s3down')}\n{operator.logs()[-3000:]}",
        )
        status = cluster.resource("s3down")["status"]
        assert status["observedGeneration"] == 2 and status["winner"]["variant"] == "tf-savedmodel"
        gen2 = _s3_store(server, f"s3://{bucket}/runs/ml/s3down/gen-2")
        assert ledger.check_run(gen2) == "complete"
        assert_no_orphaned_or_duplicated_jobs(cluster)
    assert_secret_never_leaked(cluster, kubelet, operator, server, bucket)


def test_s3_down_during_upload_is_retried_until_it_is_back_and_nothing_is_lost(
    cluster: Cluster, store_server: Any, digits_dir: Path, ledger: CaseLedger
) -> None:
    server = store_server
    bucket = server.make_bucket("reliability-upload")
    model_prefix, output_prefix = "modèles/数字 digits", "rüns ☃"
    admin = server.client()
    stage_inputs(admin, bucket, model_prefix, digits_dir)
    create_secret(cluster, server)
    kubelet = cluster.start_kubelet(real_worker=True)
    operator = cluster.start_operator(env=server.env())
    run_prefix = f"{output_prefix}/ml/upload/gen-1/"

    def upload_step_started() -> bool:
        # prepare publishes in its upload step (the Job's main container, after fetch and execute), as
        # a burst at the end: stop the store as that step starts, before its first request.
        return any(r.name.startswith("upload-g1-prepare-a1-") and r.containers and r.containers[-1].name == "upload"
                   and r.containers[-1].pid for r in kubelet.runs)

    with ledger.fault("S3 stopped during an upload"):
        cluster.create(
            "upload",
            worker_spec(
                server,
                bucket,
                model_prefix,
                output_prefix,
                variants=["tflite-fp32"],
                execution={"backoff": "5s", "maxAttempts": 3},
            ),
        )
        eventually(upload_step_started, timeout=180, interval=0.01)
        server.kill()
        first = eventually(
            lambda: next(
                (r for r in kubelet.runs if r.name.startswith("upload-g1-prepare-a1-") and r.exit_code is not None),
                None,
            ),
            timeout=60,
        )
        assert first.exit_code == 5, f"the first attempt was not interrupted: {first.message}"
        summary = json.loads(first.message)
        assert summary["reason"] == "StorageError" and server.endpoint in summary["message"]
        assert any(f"while trying to {action}" in summary["message"] for action in ("upload", "write")), summary
        # The cause is in the status while the operator waits to retry.
        retrying = eventually(
            lambda: (c := (cluster.condition("upload", "Succeeded") or {})).get("reason") == "Backoff" and c,
            timeout=60,
            message=lambda: str(cluster.resource("upload")),
        )
        assert f"S3 endpoint {server.endpoint} unreachable" in retrying["message"]
        server.start()  # usually back before the second attempt's first request; if not, a third one follows

        eventually(
            lambda: succeeded(cluster, "upload"),
            timeout=240,
            message=lambda: f"{cluster.resource('upload')}\n{operator.logs()[-3000:]}",
        )
        prepare = cluster.resource("upload")["status"]["stages"][0]
        assert prepare["attempts"] in (2, 3) and prepare["state"] == "succeeded"
        store = _s3_store(server, f"s3://{bucket}/{run_prefix}")
        assert ledger.check_run(store) == "complete"  # every object the broken attempts left is accounted for
        assert_no_orphaned_or_duplicated_jobs(cluster)
    assert_secret_never_leaked(cluster, kubelet, operator, server, bucket)
