"""Tenancy: which worker images a resource may run, and per-Job S3 credentials minted by STS AssumeRole with
the Job's session policy, handed over in a Secret the Job owns. No STS server runs here: botocore's Stubber
checks the request the operator sends and answers it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from optismith.controller.credentials import (
    assume_role_arguments,
    credentials_secret,
    credentials_secret_name,
    mint_credentials,
    session_policy,
    with_credentials,
)
from optismith.controller.specs import WorkerDefaults, build_job
from optismith.controller.tenancy import image_refusal
from optismith.pipeline.plan import JobStep
from optismith.spec import parse_spec

DEFAULTS = (WorkerDefaults().cpu_image, WorkerDefaults().gpu_image)
ROLE = "arn:aws:iam::123456789012:role/optismith-worker"


def spec_with(image: str | None = None, **extra: Any) -> Any:
    target: dict[str, Any] = {"name": "cpu", **({"image": image} if image else {})}
    return parse_spec({"model": {"uri": "s3://models/digits/"}, "output": {"uri": "s3://runs/"},
                       "targets": [target], **extra})


def test_the_operators_own_images_always_run() -> None:
    assert image_refusal(spec_with(), DEFAULTS, [], override=False) is None
    assert image_refusal(spec_with(DEFAULTS[0]), DEFAULTS, [], override=False) is None


def test_other_images_need_the_override_and_the_allow_list() -> None:
    refused = image_refusal(spec_with("attacker.example.com/miner:1"), DEFAULTS, [], override=False)
    assert refused and "spec.targets[0].image" in refused and "imageOverride is false" in refused
    allowed = ["registry.example.com/optismith/*"]
    assert image_refusal(spec_with("registry.example.com/optismith/worker-cpu:2"), DEFAULTS, allowed, True) is None
    refused = image_refusal(spec_with("registry.example.com/other/worker:2"), DEFAULTS, allowed, True)
    assert refused and "not in the operator's allowed worker images (registry.example.com/optismith/*)" in refused


def test_sts_assume_role_gets_the_jobs_session_policy_and_the_secret_is_owned_by_the_job() -> None:
    import boto3
    from botocore.stub import Stubber

    spec = spec_with(storage={"credentialsSecret": {"name": "tenant-s3"}}, promotion={"uri": "s3://models/opt"})
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="operator", aws_secret_access_key="x")
    expires = dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.UTC)
    expected = assume_role_arguments(spec, "ml", "digits", 4, "promote", ROLE, 1800)
    with Stubber(sts) as stub:
        stub.add_response("assume_role", {
            "Credentials": {"AccessKeyId": "ASIATEMPORARY0001", "SecretAccessKey": "minted-secret",
                            "SessionToken": "token", "Expiration": expires},
            "AssumedRoleUser": {"AssumedRoleId": "AROA:optismith", "Arn": f"{ROLE}/session"}}, expected)
        minted = mint_credentials(sts, spec, "ml", "digits", 4, "promote", ROLE, 1800)
        stub.assert_no_pending_responses()
    assert expected["RoleSessionName"] == "optismith-ml-digits-g4-promote" and expected["DurationSeconds"] == 1800
    assert json.loads(expected["Policy"]) == session_policy(spec, "ml", "digits", 4, "promote")
    assert any("s3:::models/opt/*" in r for s in json.loads(expected["Policy"])["Statement"]
               for r in s["Resource"])  # only the promote Job may write the promotion

    body = {"apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
            "metadata": {"name": "digits", "namespace": "ml", "generation": 4, "uid": "u"}, "spec": {}}
    job = build_job(body, spec, JobStep("promote"), 1, WorkerDefaults())
    secret_name = credentials_secret_name(job["metadata"]["name"])
    job = with_credentials(job, secret_name)
    env = {e["name"]: e for c in job["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        # The tenant's own Secret is replaced by the minted one.
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": key}
    created = {**job, "metadata": {**job["metadata"], "uid": "job-uid"}}
    secret = credentials_secret(created, minted)
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "ASIATEMPORARY0001", "AWS_SECRET_ACCESS_KEY": "minted-secret",
                                    "AWS_SESSION_TOKEN": "token"}
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", job["metadata"]["name"], "job-uid")
    assert secret["metadata"]["annotations"]["optismith.io/expires"].startswith("2026-01-01")


def test_the_step_that_runs_the_model_never_gets_credentials() -> None:
    job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "initContainers": [{"name": "fetch", "env": []}, {"name": "execute", "env": [{"name": "HOME", "value": "/t"}]}],
        "containers": [{"name": "upload", "env": []}]}}}}
    pod = with_credentials(job, "j-s3")["spec"]["template"]["spec"]
    names = {c["name"]: {e["name"] for e in c["env"]} for c in [*pod["initContainers"], *pod["containers"]]}
    assert names["execute"] == {"HOME"}
    assert names["fetch"] == names["upload"] == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


@pytest.mark.parametrize("seconds", [899, 43201])
def test_credential_lifetimes_stay_within_what_sts_allows(seconds: int) -> None:
    from pydantic import ValidationError

    from optismith.controller.settings import OperatorSettings

    with pytest.raises(ValidationError):
        OperatorSettings(worker_s3_credentials_seconds=seconds)
