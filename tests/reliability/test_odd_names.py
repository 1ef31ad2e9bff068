"""Odd names: resource names up to Kubernetes' 253 characters (with dots), target names up to 63, and
object keys with unicode, spaces, URL-special characters or hundreds of bytes. Job names must stay valid,
short enough for the `job-name` label, and unique per resource, step and attempt; keys must round-trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from optismith.controller.specs import job_labels, job_name
from optismith.errors import StorageError
from optismith.pipeline.plan import JobStep
from optismith.storage import open_storage
from tests.harness import eventually
from tests.operator.cluster import Cluster, fake_spec
from tests.reliability.reliability_kit import (
    CaseLedger,
    assert_no_orphaned_or_duplicated_jobs,
    succeeded,
)

SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
JOB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS label, as the API server wants for Jobs
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DNS_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
PHASES = ["prepare", "measure", "finalize", "promote"]


@st.composite
def resource_names(draw: st.DrawFn) -> str:
    """metadata.name as the API server accepts it: a DNS subdomain of at most 253 characters."""
    name = ".".join(draw(st.lists(DNS_LABEL, min_size=1, max_size=8)))[:253].rstrip(".-")
    assume(SUBDOMAIN.fullmatch(name))
    return name


@st.composite
def steps(draw: st.DrawFn) -> JobStep:
    phase = draw(st.sampled_from(PHASES))
    return JobStep(phase, draw(DNS_LABEL) if phase == "measure" else None)


def other_than(name: str, limit: int) -> str:
    """A name of the same kind that differs in its last character (where truncation hurts most)."""
    return (name if len(name) < limit else name[:-1]) + ("y" if name[-1] == "x" else "x")


@settings(max_examples=300, deadline=None, database=None)
@given(name=resource_names(), generation=st.integers(1, 2**63 - 1), step=steps(), attempt=st.integers(1, 20))
def test_job_names_are_valid_short_and_unique(
    name: str, generation: int, step: JobStep, attempt: int, session_ledger: object
) -> None:
    made = job_name(name, generation, step, attempt)
    assert JOB_NAME.fullmatch(made), made
    assert job_name(name, generation, step, attempt) == made  # deterministic: restarts find their Jobs
    others = {
        job_name(name, generation, step, attempt + 1),
        job_name(name, generation + 1, step, attempt),
        job_name(other_than(name, 253), generation, step, attempt),
    }
    if step.target:
        others.add(job_name(name, generation, JobStep(step.phase, other_than(step.target, 63)), attempt))
    assert made not in others, (made, others)
    for value in job_labels(name, generation, step, attempt).values():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    session_ledger.bad_inputs["extreme but valid resource and target names (hypothesis)"] += 1  # type: ignore[attr-defined]


def test_the_cases_that_broke_job_names() -> None:
    for dotted in ("x.y", "a" * 39 + "." + "b" * 100):  # dots; a cut right after a dot
        assert JOB_NAME.fullmatch(job_name(dotted, 1, JobStep("prepare"), 1))
    assert job_name("x.y", 1, JobStep("prepare"), 1) != job_name("x-y", 1, JobStep("prepare"), 1)
    target = "t" * 63  # crowded out the resource name, the attempt and the digest
    first, second = (job_name("digits", 1, JobStep("measure", target), a) for a in (1, 2))
    assert first != second and first.startswith("digits-g1-measure-a1-")
    assert job_name("other", 1, JobStep("measure", target), 1) != first


@pytest.mark.operator
@pytest.mark.slow
def test_longest_names_run_to_completion_with_retries(cluster: Cluster, shared_dir: Path, ledger: CaseLedger) -> None:
    cluster.start_kubelet()
    cluster.start_operator()
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    target = "t" * 63
    ledger.bad_input("odd names through the operator", 2)
    for name in (long_name, "x.y"):
        spec = fake_spec(shared_dir, model="flaky-measure")  # measure fails once: a second attempt is named
        spec["targets"] = [{"name": target}]
        cluster.create(name, spec)
    for name in (long_name, "x.y"):
        eventually(lambda: succeeded(cluster, name), timeout=60, message=lambda: str(cluster.resource(name)))
        measure = next(s for s in cluster.resource(name)["status"]["stages"] if s["phase"] == "measure")
        assert measure["attempts"] == 2 and measure["target"] == target
    jobs = cluster.api.list("jobs", cluster.namespace)
    names = [j["metadata"]["name"] for j in jobs]
    assert len(jobs) == 2 * 4 and len(set(names)) == len(names), names  # prepare, measure x2, finalize each
    assert all(JOB_NAME.fullmatch(n) for n in names), names
    assert (shared_dir / "runs" / "ml" / long_name / "gen-1" / "results.json").is_file()
    assert_no_orphaned_or_duplicated_jobs(cluster)


ODD_KEYS = [
    "数字/ü ñ/模型 (1).pb",
    "emoji 🤖/model.keras",
    "url special/a+b=c&d?e#f%20g;h,i:j@k$l!m'n(o)p[q]r~s",
    "tabs\tand newlines\n/x",
    "right-to-left/\u05d0\u05d1\u05d2/\u202ekeras.exe",
    # S3 keys are at most 1024 bytes (SeaweedFS: and 255 per '/'-separated part, like a local file system).
    "long/" + "/".join(["k" * 200] * 4),
    "combining/e\u0301\u0301\u0301/x",
]


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_odd_keys_round_trip(backend: str, tmp_path: Path, request: pytest.FixtureRequest, ledger: CaseLedger) -> None:
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        store = open_storage(f"s3://{bucket}/odd ✓/prefix")
    else:
        store = open_storage(str(tmp_path / "odd ✓"))
    keys = ODD_KEYS
    ledger.bad_input("odd object keys", len(keys) + 1)
    for index, key in enumerate(keys):
        store.write_bytes(key, f"payload {index}".encode())
    for index, key in enumerate(keys):
        assert store.read_bytes(key) == f"payload {index}".encode(), key
        assert store.exists(key)
        local = tmp_path / "downloads" / str(index)
        store.download_file(key, local)
        assert local.read_bytes() == f"payload {index}".encode()
    assert sorted(store.list()) == sorted(keys)
    for key in keys:
        store.delete(key)
    assert store.list() == []
    with pytest.raises(StorageError) as refused:  # too long for the store: a clear error, nothing written
        store.write_bytes("too-long/" + "/".join(["k" * 250] * 5), b"x")
    assert "too long" in refused.value.message.lower()
    assert store.list() == []
