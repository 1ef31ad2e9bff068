"""Least-privilege S3 access for worker Jobs: the IAM session policy of one Job.

A worker runs an untrusted model, so it must not hold credentials that reach other models or other runs.
Whoever mints a Job's credentials (see docs/reliability.md: STS AssumeRole with this policy as the session
policy) gets from here exactly what that Job needs:

* read (s3:GetObject) the model (the object named by spec.model.uri and everything under it), and the
  calibration and evaluation objects;
* read and write (s3:GetObject, s3:PutObject, s3:DeleteObject, multipart clean-up) under its own run
  prefix `<output>/<namespace>/<name>/gen-<generation>/` only;
* for the promote Job only, the same under spec.promotion.uri;
* s3:ListBucket on each bucket involved, limited by an `s3:prefix` condition to the prefixes above.

Pure: no I/O and no AWS SDK, so the policy is unit-tested statement by statement. Local (non-S3) URIs get
no statements.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from optismith.controller.specs import run_uri
from optismith.errors import SpecError
from optismith.spec import ModelOptimizationSpec
from optismith.storage.s3 import split_s3_uri

POLICY_VERSION = "2012-10-17"
# AWS STS limit on an inline session policy in plain text (after removing whitespace).
MAX_SESSION_POLICY_CHARS = 2048
MAX_SESSION_NAME = 64
PROMOTE_PHASE = "promote"

READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                 "s3:ListMultipartUploadParts")


def literal(key: str) -> str:
    """An S3 key as it must appear in an ARN or an s3:prefix pattern: IAM reads '*' and '?' as wildcards
    and '$' as a variable, so a key containing them would grant more than that key."""
    return key.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")


@dataclass
class _Grants:
    """Object ARNs per kind of access, and list prefixes per bucket, in first-seen order."""

    partition: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    prefixes: dict[str, list[str]] = field(default_factory=dict)

    def _arn(self, bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{key}"

    def _add(self, target: list[str], values: list[str]) -> None:
        target.extend(v for v in values if v not in target)

    def _listable(self, bucket: str, patterns: list[str]) -> None:
        self._add(self.prefixes.setdefault(bucket, []), patterns)

    def object_or_tree(self, uri: str, access: list[str]) -> None:
        """A URI that names one object or a prefix (a model: a SavedModel directory or an archive)."""
        bucket, raw = split_s3_uri(uri)
        if not raw:
            self._add(access, [self._arn(bucket, "*")])
            self._listable(bucket, ["*"])
            return
        key = literal(raw)
        self._add(access, [self._arn(bucket, key), self._arn(bucket, f"{key}/*")])
        self._listable(bucket, [key, f"{key}/*"])

    def one_object(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self._add(self.read, [self._arn(bucket, literal(key) or "*")])

    def tree(self, uri: str, access: list[str]) -> None:
        bucket, key = split_s3_uri(uri)
        pattern = f"{literal(key)}/*" if key else "*"
        self._add(access, [self._arn(bucket, pattern)])
        self._listable(bucket, [pattern])


def session_policy(
    spec: ModelOptimizationSpec, namespace: str, name: str, generation: int, phase: str | None = None,
    partition: str = "aws",
) -> dict[str, Any]:
    """The IAM policy for the Job of `phase` (prepare, measure, finalize, promote) of this run.

    `phase=None` is the union of every phase of the run (what `optismith run` needs in one process),
    including promotion when spec.promotion is set.
    """
    grants = _Grants(partition)
    if spec.model.uri.startswith("s3://"):
        grants.object_or_tree(spec.model.uri, grants.read)
    for data in (spec.calibration.uri, spec.evaluation.uri):
        if data and data.startswith("s3://"):
            grants.one_object(data)
    run = run_uri(spec, namespace, name, generation)
    if run.startswith("s3://"):
        grants.tree(run, grants.write)
    promotion = spec.promotion.uri if spec.promotion is not None else None
    if promotion and promotion.startswith("s3://") and phase in (None, PROMOTE_PHASE):
        grants.tree(promotion, grants.write)

    statements: list[dict[str, Any]] = []
    if grants.read:
        statements.append({"Sid": "ReadInputs", "Effect": "Allow", "Action": list(READ_ACTIONS),
                           "Resource": grants.read})
    if grants.write:
        statements.append({"Sid": "ReadWriteOwnRun", "Effect": "Allow", "Action": list(WRITE_ACTIONS),
                           "Resource": grants.write})
    for index, (bucket, patterns) in enumerate(grants.prefixes.items()):
        statements.append({
            "Sid": f"ListOwnPrefixes{index}", "Effect": "Allow", "Action": ["s3:ListBucket"],
            "Resource": [f"arn:{partition}:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": patterns}},
        })
    return {"Version": POLICY_VERSION, "Statement": statements}


def encode_session_policy(policy: dict[str, Any]) -> str:
    """The compact JSON STS takes as `Policy`; refuses one over STS's size limit instead of letting
    AssumeRole fail with a less helpful PackedPolicyTooLarge."""
    text = json.dumps(policy, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_SESSION_POLICY_CHARS:
        raise SpecError(
            f"the S3 session policy for this run is {len(text)} characters, over the STS limit of "
            f"{MAX_SESSION_POLICY_CHARS}", where="spec.model.uri, spec.output.uri, spec.promotion.uri",
            fix="use shorter bucket prefixes, or give workers a role scoped by a managed policy instead")
    return text


def session_name(namespace: str, name: str, generation: int, phase: str) -> str:
    """RoleSessionName: shows up in CloudTrail, so it says which Job used the credentials."""
    raw = f"optismith-{namespace}-{name}-g{generation}-{phase}"
    clean = re.sub(r"[^\w+=,.@-]", "-", raw)
    if len(clean) <= MAX_SESSION_NAME:
        return clean
    tail = f"-g{generation}-{phase}"
    return clean[: MAX_SESSION_NAME - len(tail)] + tail


def assume_role_arguments(
    spec: ModelOptimizationSpec, namespace: str, name: str, generation: int, phase: str, role_arn: str,
    duration_seconds: int = 3600, partition: str = "aws",
) -> dict[str, Any]:
    """Keyword arguments for boto3's `sts.assume_role`, for the Job of one phase of a run."""
    policy = session_policy(spec, namespace, name, generation, phase, partition)
    return {
        "RoleArn": role_arn,
        "RoleSessionName": session_name(namespace, name, generation, phase),
        "Policy": encode_session_policy(policy),
        # STS allows 15 minutes to the role's maximum session duration.
        "DurationSeconds": max(900, duration_seconds),
    }


# --- applying the policy: STS AssumeRole per Job, handed over in a Secret the Job owns ---

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
NO_CREDENTIALS_CONTAINERS = frozenset({"execute"})  # the step that runs the model never gets them


def credentials_secret_name(job_name: str) -> str:
    return f"{job_name}-s3"[:253]


def mint_credentials(sts: Any, spec: ModelOptimizationSpec, namespace: str, name: str, generation: int, phase: str,
                     role_arn: str, duration_seconds: int) -> dict[str, str]:
    """Temporary credentials for one Job, limited by its session policy (the role's policy AND this one)."""
    response = sts.assume_role(**assume_role_arguments(spec, namespace, name, generation, phase, role_arn,
                                                       duration_seconds))
    minted = response["Credentials"]
    return {"AWS_ACCESS_KEY_ID": minted["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": minted["SecretAccessKey"],
            "AWS_SESSION_TOKEN": minted["SessionToken"], "expiration": str(minted["Expiration"])}


def credentials_secret(job: dict[str, Any], credentials: dict[str, str]) -> dict[str, Any]:
    """The Secret that hands a Job its minted credentials. Owned by the Job (created first, so its uid is
    known): Kubernetes' garbage collector deletes it with the Job, and the credentials expire on their own."""
    metadata = job["metadata"]
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": credentials_secret_name(metadata["name"]), "namespace": metadata["namespace"],
            "labels": dict(metadata.get("labels") or {}),
            "annotations": {"optismith.io/expires": credentials.get("expiration", "")},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": metadata["name"],
                                 "uid": metadata["uid"], "controller": True, "blockOwnerDeletion": False}],
        },
        "stringData": {key: credentials[key] for key in CREDENTIAL_KEYS},
    }


def credential_env(secret_name: str) -> list[dict[str, Any]]:
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}} for key in CREDENTIAL_KEYS]


def with_credentials(job: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """The Job with every container's and init container's AWS credentials taken from `secret_name` (any
    credentials they referenced before are replaced), except the step that runs the model."""
    pod = job["spec"]["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        if container.get("name") in NO_CREDENTIALS_CONTAINERS:
            continue
        env = [e for e in container.get("env", []) if e.get("name") not in CREDENTIAL_KEYS]
        container["env"] = [*env, *credential_env(secret_name)]
    return job
