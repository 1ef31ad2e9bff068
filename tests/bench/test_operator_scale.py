"""The operator-scale bench: the processless worker writes what the operator reads, latencies come from
the API server's history, and (with the real operator) a small run reports every resource."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import bench.operator_scale as operator_scale
from bench.scale_kubelet import complete_stages
from optismith.results import RunResults, TerminationMessage
from tests.harness.history import RequestRecord

MANIFEST = json.dumps({"metadata": {"name": "mo-1", "namespace": "ml"}, "spec": {}})


def test_the_instant_worker_writes_the_records_and_results_the_operator_reads(tmp_path: Path) -> None:
    run = tmp_path / "ml" / "mo-1" / "gen-1"
    argv = [
        "/venv/bin/python",
        "stage",
        "benchmark",
        "evaluate",
        "--manifest-env",
        "M",
        "--run-uri",
        str(run),
        "--target",
        "cpu",
    ]
    message = TerminationMessage.model_validate_json(complete_stages(argv, {"M": MANIFEST}))
    assert message.status == "succeeded" and [s.stage for s in message.stages] == ["benchmark", "evaluate"]
    assert sorted(p.name for p in (run / "stages").iterdir()) == ["benchmark@cpu.json", "evaluate@cpu.json"]
    assert not (run / "results.json").exists()
    complete_stages(
        ["python", "stage", "select", "report", "--manifest-env", "M", "--run-uri", str(run)], {"M": MANIFEST}
    )
    results = RunResults.model_validate_json((run / "results.json").read_text())  # what the operator reads
    assert results.name == "mo-1" and results.selection is not None and results.selection.winner == "tflite-int8"
    assert len(results.selection.candidates) == 12


def _record(verb: str, resource: str, name: str, at: float, status: int = 201) -> RequestRecord:
    return RequestRecord(
        method="POST",
        path="/",
        query={},
        verb=verb,
        group=None,
        version="v1",
        resource=resource,
        subresource=None,
        namespace="ml",
        name=name,
        timestamp=at,
        status=status,
    )


class FakeHistory:
    def __init__(self, records: list[RequestRecord]) -> None:
        self.records = records

    def creates(self, *, resource: str, succeeded: bool) -> list[RequestRecord]:
        return [
            r
            for r in self.records
            if r.verb == "create"
            and r.resource == resource
            and (r.status is not None and 200 <= r.status < 300) == succeeded
        ]


def test_cr_to_first_job_latency_pairs_each_resource_with_its_own_first_job() -> None:
    history = FakeHistory(
        [
            _record("create", "modeloptimizations", "mo-00001", 10.0),
            _record("create", "modeloptimizations", "mo-00002", 10.5),
            _record("create", "jobs", "mo-00002-g1-prepare-a1", 10.7),
            _record("create", "jobs", "mo-00001-g1-prepare-a1", 11.2, status=409),  # a failed attempt is not it
            _record("create", "jobs", "mo-00001-g1-prepare-a1", 11.5),
            _record("create", "jobs", "mo-00001-g1-measure-cpu-a1", 16.0),
        ]
    )
    api = SimpleNamespace(history=history)
    latencies = operator_scale.first_job_latencies(api, ["mo-00001", "mo-00002", "mo-00003"])  # type: ignore[arg-type]
    assert latencies == pytest.approx({"mo-00001": 1.5, "mo-00002": 0.2})


def test_percentiles_and_growth_exponents() -> None:
    values = [float(v) for v in range(1, 101)]
    assert operator_scale.percentile(values, 50) == pytest.approx(50.5)
    assert operator_scale.percentile(values, 99) == pytest.approx(99.01) and operator_scale.percentile([], 50) is None
    results = [{"resources": 100, "cpu": 2.0}, {"resources": 1000, "cpu": 20.0}, {"resources": 400, "cpu": None}]
    assert operator_scale.growth(results, "cpu") == "1.00"
    assert operator_scale.growth([{"resources": 100, "cpu": 1.0}, {"resources": 1000, "cpu": 100.0}], "cpu") == "2.00"


@pytest.mark.operator
@pytest.mark.slow
def test_a_small_run_brings_every_resource_to_succeeded_with_one_job_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scale.json"
    assert (
        operator_scale.main(
            ["--counts", "6", "--interval", "0.5", "--rate", "20", "--timeout", "90", "--out", str(out)]
        )
        == 0
    )
    result = json.loads(out.read_text())["results"][0]
    assert result["all_succeeded"] and result["succeeded"] == 6
    assert result["create_seconds"] >= 5 / 20  # paced: the sixth resource is created 0.25 s after the first
    assert result["jobs_created"] == 18 and result["duplicate_jobs"] == 0
    assert result["operator_requests"]["kubernetes-client create jobs"] == 18  # not one 409 retry
    assert 0 < result["cr_to_job_p50_s"] <= result["cr_to_job_p99_s"] < 30
    assert result["operator_peak_rss_mb"] > 20 and result["operator_cpu_s"] > 0
    assert result["samples"] and result["all_succeeded_s"] >= 3 * 0.5  # three Jobs, each seen on a tick
    assert "| 6 |" in capsys.readouterr().out
