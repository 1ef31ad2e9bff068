"""What the operator reads back from a staged phase's pod: the step that failed explains the Job, and the
execute step's GPU counts as the Job's."""

from __future__ import annotations

from optismith.controller.observe import job_summary, pod_summary
from optismith.controller.specs import WorkerDefaults, build_job
from optismith.pipeline.plan import JobStep
from optismith.results import TerminationMessage
from optismith.spec import parse_spec
from tests.controller.test_specs import SPEC, body


def _terminated(code: int, message: str = "") -> dict[str, object]:
    return {"state": {"terminated": {"exitCode": code, "message": message}}}


def test_a_failed_init_step_explains_the_pod() -> None:
    failed = TerminationMessage(status="failed", reason="StorageError", message="S3 unreachable").render(4096)
    pod = {"metadata": {"name": "p"}, "status": {
        "initContainerStatuses": [{"name": "fetch", **_terminated(5, failed)}],
        "containerStatuses": [{"name": "upload", "state": {"waiting": {"reason": "PodInitializing"}}}]}}
    assert (pod_summary(pod)["exit_code"], pod_summary(pod)["termination_message"]) == (5, failed)


def test_the_upload_step_speaks_for_a_pod_whose_init_steps_succeeded() -> None:
    done = TerminationMessage(status="succeeded").render(4096)
    pod = {"metadata": {"name": "p"}, "status": {
        "initContainerStatuses": [{"name": "fetch", **_terminated(0)}, {"name": "execute", **_terminated(0)}],
        "containerStatuses": [{"name": "upload", **_terminated(0, done)}]}}
    assert (pod_summary(pod)["exit_code"], pod_summary(pod)["termination_message"]) == (0, done)
    failing = {"metadata": {"name": "p"}, "status": {
        "initContainerStatuses": [{"name": "fetch", **_terminated(0)}, {"name": "execute", **_terminated(0)}],
        "containerStatuses": [{"name": "upload", **_terminated(8, "unsafe")}]}}
    assert pod_summary(failing)["exit_code"] == 8


def test_a_gpu_measure_job_counts_as_a_gpu_job() -> None:
    gpu = build_job(body(), parse_spec(SPEC), JobStep("measure", "t4"), 1, WorkerDefaults())
    cpu = build_job(body(), parse_spec(SPEC), JobStep("measure", "cpu"), 1, WorkerDefaults())
    assert job_summary(gpu)["gpu"] is True and job_summary(cpu)["gpu"] is False
