"""Credentials scoped to one run: the IAM session policy of each Job (optismith.controller.credentials), its
exact statements, its meaning under IAM's matching rules (checked for arbitrary keys), and the same scope
enforced by a real object store: a SeaweedFS identity mirroring the policy runs the whole pipeline, yet
cannot read another model, overwrite another run, or promote from a non-promote Job."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from optismith.controller.credentials import (
    MAX_SESSION_POLICY_CHARS,
    assume_role_arguments,
    encode_session_policy,
    session_name,
    session_policy,
)
from optismith.errors import SpecError, StorageAuthError
from optismith.spec import parse_spec
from optismith.storage.s3 import S3Settings, S3Storage
from tests.fixtures.seaweedfs import SeaweedFS
from tests.reliability.reliability_kit import CaseLedger

ARN = "arn:aws:s3:::"
WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def spec_for(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "model": {"uri": "s3://models/vision/digits/"},
        "calibration": {"uri": "s3://datasets/digits/calibration.npz"},
        "evaluation": {"uri": "s3://datasets/digits/eval.npz"},
        "output": {"uri": "s3://runs/optismith"},
        "promotion": {"uri": "s3://models/promoted/digits"},
    }
    raw.update(overrides)
    return parse_spec(raw)


def test_policy_grants_exactly_the_inputs_and_the_own_run_prefix() -> None:
    policy = session_policy(spec_for(), "ml", "digits", 7, "prepare")
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadInputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [
                    f"{ARN}models/vision/digits",
                    f"{ARN}models/vision/digits/*",
                    f"{ARN}datasets/digits/calibration.npz",
                    f"{ARN}datasets/digits/eval.npz",
                ],
            },
            {
                "Sid": "ReadWriteOwnRun",
                "Effect": "Allow",
                "Action": WRITE,
                "Resource": [f"{ARN}runs/optismith/ml/digits/gen-7/*"],
            },
            {
                "Sid": "ListOwnPrefixes0",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{ARN}models"],
                "Condition": {"StringLike": {"s3:prefix": ["vision/digits", "vision/digits/*"]}},
            },
            {
                "Sid": "ListOwnPrefixes1",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"{ARN}runs"],
                "Condition": {"StringLike": {"s3:prefix": ["optismith/ml/digits/gen-7/*"]}},
            },
        ],
    }


@pytest.mark.parametrize("phase", ["prepare", "measure", "finalize"])
def test_only_the_promote_job_may_write_the_promotion_prefix(phase: str) -> None:
    others = json.dumps(session_policy(spec_for(), "ml", "digits", 1, phase))
    assert "promoted" not in others
    promote = session_policy(spec_for(), "ml", "digits", 1, "promote")
    write = next(s for s in promote["Statement"] if s["Sid"] == "ReadWriteOwnRun")
    assert write["Resource"] == [f"{ARN}runs/optismith/ml/digits/gen-1/*", f"{ARN}models/promoted/digits/*"]
    listing = next(s for s in promote["Statement"] if s["Resource"] == [f"{ARN}models"])
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["vision/digits", "vision/digits/*", "promoted/digits/*"]


def test_local_uris_get_no_statements_and_archives_are_one_object_or_a_prefix() -> None:
    local = session_policy(
        spec_for(
            model={"uri": "/models/digits"},
            calibration={"uri": "/data/c.npz"},
            evaluation={"uri": "/data/e.npz"},
            output={"uri": "/runs"},
            promotion=None,
        ),
        "ml",
        "digits",
        1,
    )
    assert local["Statement"] == []
    archive = session_policy(spec_for(model={"uri": "s3://models/digits.tar.gz"}), "ml", "digits", 1, "prepare")
    assert archive["Statement"][0]["Resource"][:2] == [f"{ARN}models/digits.tar.gz", f"{ARN}models/digits.tar.gz/*"]


def test_wildcards_in_keys_are_literal() -> None:
    policy = session_policy(spec_for(model={"uri": "s3://models/team-*/m?$x/"}), "ml", "digits", 1, "prepare")
    assert policy["Statement"][0]["Resource"][:2] == [
        f"{ARN}models/team-${{*}}/m${{?}}${{$}}x",
        f"{ARN}models/team-${{*}}/m${{?}}${{$}}x/*",
    ]
    assert not allowed(policy, "s3:GetObject", "models", "team-a/other/saved_model.pb")
    assert allowed(policy, "s3:GetObject", "models", "team-*/m?$x/saved_model.pb")


def test_session_policy_fits_sts_or_is_refused_clearly() -> None:
    assert len(encode_session_policy(session_policy(spec_for(), "ml", "digits", 1, "promote"))) < 1024
    long_prefix = "p" * 700
    huge = spec_for(model={"uri": f"s3://models/{long_prefix}/"}, output={"uri": f"s3://runs/{long_prefix}"})
    with pytest.raises(SpecError) as refused:
        encode_session_policy(session_policy(huge, "ml", "digits", 1, "promote"))
    assert f"over the STS limit of {MAX_SESSION_POLICY_CHARS}" in refused.value.message
    assert "spec.model.uri" in refused.value.where


def test_assume_role_arguments_name_the_job() -> None:
    arguments = assume_role_arguments(
        spec_for(), "ml", "digits", 3, "measure", "arn:aws:iam::123456789012:role/optismith-worker", duration_seconds=60
    )
    assert arguments["RoleSessionName"] == "optismith-ml-digits-g3-measure"
    assert arguments["DurationSeconds"] == 900  # STS's minimum
    assert json.loads(arguments["Policy"]) == session_policy(spec_for(), "ml", "digits", 3, "measure")
    long = session_name("n" * 63, "x" * 253, 12, "finalize")
    assert len(long) <= 64 and long.endswith("-g12-finalize") and re.fullmatch(r"[\w+=,.@-]+", long)


# --- what the policy means, under IAM's matching rules ------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    """IAM globbing: '*' any run of characters (including '/'), '?' one, ${*} ${?} ${$} literal."""
    out, i = "", 0
    while i < len(glob):
        literal = next((tok for tok in ("${*}", "${?}", "${$}") if glob.startswith(tok, i)), None)
        if literal:
            out += re.escape(literal[2])
            i += len(literal)
        else:
            out += ".*" if glob[i] == "*" else "." if glob[i] == "?" else re.escape(glob[i])
            i += 1
    return re.compile(out, re.DOTALL)


def allowed(policy: dict[str, Any], action: str, bucket: str, key: str = "", list_prefix: str | None = None) -> bool:
    resource = f"{ARN}{bucket}" if action == "s3:ListBucket" else f"{ARN}{bucket}/{key}"
    for statement in policy["Statement"]:
        if action not in statement["Action"]:
            continue
        if not any(_pattern(r).fullmatch(resource) for r in statement["Resource"]):
            continue
        condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if condition is not None and (
            list_prefix is None or not any(_pattern(c).fullmatch(list_prefix) for c in condition)
        ):
            continue
        return True
    return False


segment = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=12)
keys = st.lists(
    st.sampled_from(["vision", "digits", "gen-7", "gen-8", "ml", "optismith", "promoted"]) | segment,
    min_size=1,
    max_size=6,
).map("/".join)


@settings(max_examples=300, deadline=None, database=None)
@given(
    bucket=st.sampled_from(["models", "runs", "datasets", "other"]),
    key=keys,
    phase=st.sampled_from(["prepare", "measure", "finalize", "promote"]),
)
def test_any_key_is_readable_or_writable_only_inside_the_granted_prefixes(bucket: str, key: str, phase: str) -> None:
    policy = session_policy(spec_for(), "ml", "digits", 7, phase)
    path = f"{bucket}/{key}"
    model = path == "models/vision/digits" or path.startswith("models/vision/digits/")
    data = path in ("datasets/digits/calibration.npz", "datasets/digits/eval.npz")
    run = path.startswith("runs/optismith/ml/digits/gen-7/")
    promotion = phase == "promote" and path.startswith("models/promoted/digits/")
    assert allowed(policy, "s3:GetObject", bucket, key) == (model or data or run or promotion)
    assert allowed(policy, "s3:PutObject", bucket, key) == (run or promotion)
    assert allowed(policy, "s3:DeleteObject", bucket, key) == (run or promotion)
    listable = model or run or promotion
    assert allowed(policy, "s3:ListBucket", bucket, list_prefix=key) == listable


# --- the same scope, enforced by an object store ------------------------------------------------


def seaweedfs_actions(policy: dict[str, Any]) -> list[str]:
    """The policy in SeaweedFS's identity actions. SeaweedFS grants by bucket/prefix* only, so a single
    object becomes the prefix of its name (slightly wider than IAM's exact match)."""
    verbs = {"s3:GetObject": "Read", "s3:PutObject": "Write", "s3:DeleteObject": "Write"}
    actions: set[str] = set()
    for statement in policy["Statement"]:
        for resource in statement["Resource"]:
            path = resource.removeprefix(ARN)
            if "s3:ListBucket" in statement["Action"]:
                for prefix in statement["Condition"]["StringLike"]["s3:prefix"]:
                    actions.add(f"List:{path}/{prefix.rstrip('*')}*")
            for action in statement["Action"]:
                if action in verbs:
                    actions.add(f"{verbs[action]}:{path.rstrip('*')}*")
    return sorted(actions)


@pytest.fixture
def scoped_store(tmp_path: Path) -> Iterator[tuple[SeaweedFS, dict[str, dict[str, str]]]]:
    """A SeaweedFS of its own: the worker identities are known only once the policy is."""
    spec = store_spec()
    identities = {}
    for label, phase in (("run", None), ("finalize", "finalize")):
        access, secret = f"worker-{label}-{secrets.token_hex(4)}", secrets.token_hex(20)
        identities[label] = {"access": access, "secret": secret}
        identities[label]["actions"] = seaweedfs_actions(session_policy(spec, "ml", "digits", 1, phase))
    server = SeaweedFS(
        tmp_path / "seaweedfs",
        extra_identities=[
            {
                "name": label,
                "credentials": [{"accessKey": i["access"], "secretKey": i["secret"]}],
                "actions": i["actions"],
            }
            for label, i in identities.items()
        ],
    )
    server.start()
    try:
        yield server, identities
    finally:
        server.stop(grace=0)


def store_spec(endpoint: str = "http://unused") -> Any:
    return parse_spec(
        {
            "model": {"uri": "s3://models/vision/digits/"},
            "storage": {"endpoint": endpoint, "pathStyle": True},
            "variants": ["tf-savedmodel"],
            "evaluation": {"uri": "s3://datasets/digits/eval.npz", "samples": 200},
            "benchmark": {
                "batchSizes": [1],
                "threads": [1],
                "timeBudget": "200ms",
                "minRounds": 3,
                "warmupRuns": 1,
                "scenarios": ["singleStream"],
            },
            "output": {"uri": "s3://runs/optismith"},
            "promotion": {"uri": "s3://models/promoted/digits"},
        }
    )


def as_identity(server: SeaweedFS, identity: dict[str, str], uri: str) -> S3Storage:
    store = S3Storage(uri, S3Settings(endpoint=server.endpoint, region=server.region, path_style=True))
    store._client = server.client(identity["access"], identity["secret"])
    return store


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.s3
def test_a_worker_with_the_scoped_identity_runs_but_cannot_reach_other_models_or_runs(
    scoped_store: tuple[SeaweedFS, dict[str, dict[str, str]]],
    digits_dir: Path,
    tmp_path: Path,
    ledger: CaseLedger,
) -> None:
    server, identities = scoped_store
    admin = server.client()
    for bucket in ("models", "datasets", "runs"):
        server.make_bucket(bucket)
    model = digits_dir / "model"
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        for name in ("vision/digits", "vision/other"):
            admin.upload_file(str(path), "models", f"{name}/{path.relative_to(model).as_posix()}")
    admin.upload_file(str(digits_dir / "data" / "eval.npz"), "datasets", "digits/eval.npz")
    admin.put_object(Bucket="runs", Key="optismith/ml/other/gen-1/results.json", Body=b'{"theirs": true}')
    admin.put_object(Bucket="models", Key="promoted/digits/promotion.json", Body=b'{"previous": true}')

    spec = store_spec(server.endpoint).model_dump(by_alias=True, exclude_none=True)
    manifest = tmp_path / "digits.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "optismith.io/v1alpha1",
                "kind": "ModelOptimization",
                "metadata": {"name": "digits", "namespace": "ml"},
                "spec": spec,
            },
            allow_unicode=True,
        )
    )
    worker = identities["run"]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": worker["access"],
        "AWS_SECRET_ACCESS_KEY": worker["secret"],
        "AWS_REGION": server.region,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "optismith.cli", "run", "-f", str(manifest), "--run-id", "gen-1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert ledger.check_run(as_identity(server, worker, "s3://runs/optismith/ml/digits/gen-1")) == "complete"
    assert (
        json.loads(admin.get_object(Bucket="models", Key="promoted/digits/promotion.json")["Body"].read())["variant"]
        == "tf-savedmodel"
    )

    # The same credentials, turned against everything else.
    attempts = {
        "read another model": lambda: as_identity(server, worker, "s3://models/vision/other").read_bytes(
            "saved_model.pb"
        ),
        "overwrite another run": lambda: as_identity(server, worker, "s3://runs/optismith/ml/other/gen-1").write_bytes(
            "results.json", b'{"forged": true}'
        ),
        "read another run": lambda: as_identity(server, worker, "s3://runs/optismith/ml/other/gen-1").read_bytes(
            "results.json"
        ),
        "write another generation": lambda: as_identity(
            server, worker, "s3://runs/optismith/ml/digits/gen-2"
        ).write_bytes("results.json", b"{}"),
        "overwrite the model": lambda: as_identity(server, worker, "s3://models/vision/digits").write_bytes(
            "saved_model.pb", b"trojan"
        ),
        "list another model": lambda: as_identity(server, worker, "s3://models/vision/other").list(),
        "promote from the finalize Job": lambda: as_identity(
            server, identities["finalize"], "s3://models/promoted/digits"
        ).write_bytes("promotion.json", b'{"forged": true}'),
    }
    ledger.bad_input("compromised-worker requests outside its scope", len(attempts))
    for what, attempt in attempts.items():
        with pytest.raises(StorageAuthError):
            attempt()
            pytest.fail(f"a scoped worker could {what}")
    assert json.loads(admin.get_object(Bucket="runs", Key="optismith/ml/other/gen-1/results.json")["Body"].read()) == {
        "theirs": True
    }
    assert (
        admin.get_object(Bucket="models", Key="vision/digits/saved_model.pb")["Body"].read()
        == (model / "saved_model.pb").read_bytes()
    )


def test_jobs_take_a_session_token_from_the_credentials_secret_when_there_is_one() -> None:
    from optismith.controller.specs import WorkerDefaults, build_job
    from optismith.pipeline.plan import JobStep

    spec = spec_for(storage={"credentialsSecret": {"name": "run-credentials"}})
    body = {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "digits", "namespace": "ml", "generation": 1},
        "spec": {},
    }
    job = build_job(body, spec, JobStep("prepare"), 1, WorkerDefaults())
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "run-credentials",
        "key": "AWS_SESSION_TOKEN",
        "optional": True,
    }  # static keys have none
