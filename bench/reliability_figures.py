"""The figures in docs/reliability.md: run the fault and bad-input suites, count what they did.

    .venv/bin/python -m bench.reliability_figures            # print the figures
    .venv/bin/python -m bench.reliability_figures --write    # and put them into docs/reliability.md

Runs tests/reliability (whose tests keep a ledger: every fault injected and whether the system reached the
asserted end state, every bad input tried, every run directory checked for lost artifacts) plus the older
tests that inject faults or feed bad input elsewhere, and counts those from their outcome.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
LEDGER_ENV = "OPTISMITH_RELIABILITY_LEDGER"
COMMAND = ".venv/bin/python -m bench.reliability_figures --write"
VALID_MUTATIONS = "spec mutations that stayed valid (not counted as bad)"

# Older tests that inject faults: test id -> (fault, injections).
FAULT_TESTS = {
    "tests/operator/test_operator_lifecycle.py::test_operator_restarts_mid_run_never_duplicate_jobs":
        ("operator SIGKILLed and restarted", 3),
    "tests/operator/test_operator_lifecycle.py::test_unschedulable_gpu_job_is_reported_not_waited_on":
        ("GPU Job stays unschedulable", 1),
    "tests/operator/test_operator_lifecycle.py::test_failure_is_retried_then_reported_with_the_workers_reason":
        ("worker fails (once, and on every attempt)", 3),
    "tests/operator/test_operator_lifecycle.py::test_spec_update_mid_run_supersedes_the_old_run":
        ("spec changed mid-run", 1),
    "tests/operator/test_operator_lifecycle.py::test_deletion_mid_run_cascades_to_jobs":
        ("resource deleted mid-run", 1),
    "tests/storage/test_s3.py::test_crash_during_download_then_back": ("S3 killed mid-download (storage layer)", 1),
    "tests/storage/test_s3.py::test_crash_during_upload_then_down_then_back":
        ("S3 killed mid-upload (storage layer)", 1),
    "tests/storage/test_s3.py::test_hung_server_fails_within_the_configured_timeouts":
        ("S3 hung (SIGSTOP, storage layer)", 1),
}
# Older tests that feed bad input: test id -> category; each passing (parametrized) case is one input.
BAD_INPUT_TESTS = {
    **{f"tests/models/test_archives.py::test_{name}": "hostile or corrupt archives (unit tests)" for name in (
        "tar_slip_is_refused_and_nothing_is_written_outside", "zip_slip_is_refused",
        "links_and_devices_in_tar_are_refused", "symlink_in_zip_is_refused", "decompression_bomb_zip_is_refused",
        "tar_declaring_more_than_the_cap_is_refused_before_writing",
        "bytes_actually_written_are_counted_even_when_sizes_lie", "too_many_entries_are_refused",
        "corrupt_archive_is_a_format_error", "truncated_tar_gz_is_a_format_error", "empty_archive_is_a_format_error")},
    **{f"tests/models/test_archive_limits.py::test_{name}": "hostile or corrupt archives (unit tests)" for name in (
        "a_million_entries_are_refused_from_the_end_record_alone",
        "a_central_directory_padded_beyond_its_entries_is_refused",
        "entries_that_cannot_coexist_are_refused_and_nothing_is_left",
        "a_zip_with_a_file_then_a_directory_of_its_name_is_refused", "an_encrypted_entry_is_a_format_error",
        "an_unknown_compression_method_is_a_format_error", "a_link_in_a_local_model_directory_is_refused")},
    **{f"tests/models/policy/test_scan.py::test_{name}": "graphs with ops outside the op policy (unit tests)"
       for name in ("ops_the_deny_list_missed_are_refused_wherever_they_sit",
                    "attribute_gates_refuse_files_descriptors_and_raw_memory",
                    "a_function_attribute_must_name_a_library_function", "a_node_on_a_remote_job_is_refused",
                    "checkpoint_reads_outside_a_saver_are_refused", "asset_files_outside_assets_are_refused",
                    "an_asset_that_is_a_symbolic_link_is_refused", "a_table_read_from_a_host_file_is_refused")},
    "tests/security/test_hostile_models.py::test_hostile_model_is_refused_before_any_of_its_ops_runs":
        "hostile models refused before any of their ops ran",
    **{f"tests/models/test_npz_limits.py::test_{name}": "data files over their caps (unit tests)" for name in (
        "only_the_rows_used_count_against_the_cap", "a_fortran_order_array_is_read_whole_and_so_counts_whole",
        "a_data_file_declaring_too_many_entries_is_refused_before_its_directory_is_read",
        "a_truncated_member_is_a_data_error")},
}


def run_suites(workdir: Path) -> tuple[dict[str, Any], list[dict[str, str]], float]:
    """One pytest per test directory: each directory's conftest is imported as `conftest`, and test modules
    that import from it would see another directory's if several were collected in one session."""
    ledger = workdir / "ledger.json"
    groups: dict[str, list[str]] = {"tests/reliability": ["tests/reliability"]}
    for target in [*FAULT_TESTS, *BAD_INPUT_TESTS]:
        groups.setdefault(str(Path(target.split("::")[0]).parent), []).append(target)
    started = time.monotonic()
    cases = []
    for index, targets in enumerate(groups.values()):
        junit = workdir / f"junit-{index}.xml"
        command = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
        subprocess.run(command, cwd=ROOT, env={**os.environ, LEDGER_ENV: str(ledger)}, check=False)
        for case in ET.parse(junit).getroot().iter("testcase"):
            path = case.get("classname", "").replace(".", "/") + ".py"
            failed = case.find("failure") is not None or case.find("error") is not None
            outcome = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
            cases.append({"file": path, "name": case.get("name", ""), "outcome": outcome})
    return json.loads(ledger.read_text()), cases, time.monotonic() - started


def figures(ledger: dict[str, Any], cases: list[dict[str, str]], seconds: float) -> dict[str, Any]:
    outcome = {f"{c['file']}::{c['name']}": c["outcome"] for c in cases}
    injected: Counter[str] = Counter()
    survived: Counter[str] = Counter()
    for fault in ledger["faults"]:
        injected[fault["kind"]] += fault["count"]
        survived[fault["kind"]] += fault["count"] if fault["survived"] else 0
    for test, (kind, count) in FAULT_TESTS.items():
        if outcome.get(test) in ("passed", "failed"):
            injected[kind] += count
            survived[kind] += count if outcome[test] == "passed" else 0
    bad: Counter[str] = Counter({k: v for k, v in ledger["bad_inputs"].items() if k != VALID_MUTATIONS})
    for case in cases:
        category = BAD_INPUT_TESTS.get(f"{case['file']}::{case['name'].split('[')[0]}")
        if category and case["outcome"] == "passed":
            bad[category] += 1
    states = Counter(run["state"] for run in ledger["runs"])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "command": COMMAND,
        "tests": dict(Counter(c["outcome"] for c in cases)),
        "seconds": round(seconds),
        "faults": {k: {"injected": injected[k], "survived": survived[k]} for k in sorted(injected)},
        "faults_injected": sum(injected.values()),
        "faults_survived": sum(survived.values()),
        "bad_inputs": dict(sorted(bad.items())),
        "bad_inputs_tried": sum(bad.values()),
        "valid_mutations": ledger["bad_inputs"].get(VALID_MUTATIONS, 0),
        "runs_checked": len(ledger["runs"]),
        "runs": dict(states),
        "artifacts_lost": states.get("lost", 0),
    }


def markdown(f: dict[str, Any]) -> str:
    tests = ", ".join(f"{n} {k}" for k, n in sorted(f["tests"].items()))
    lines = [
        f"Measured {f['date']} with `{f['command']}` ({tests}; {f['seconds']} s on the 2-core test machine).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| faults injected | {f['faults_injected']} |",
        f"| faults survived (asserted end state reached) | {f['faults_survived']} |",
        f"| bad inputs tried | {f['bad_inputs_tried']} |",
        f"| run directories checked | {f['runs_checked']} "
        f"({f['runs'].get('complete', 0)} complete and verified, {f['runs'].get('incomplete', 0)} failed "
        "without a manifest) |",
        f"| artifacts lost | {f['artifacts_lost']} |",
        "",
        "| fault | injected | survived |",
        "|---|---|---|",
        *(f"| {kind} | {n['injected']} | {n['survived']} |" for kind, n in f["faults"].items()),
        "",
        "| bad input | tried |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in f["bad_inputs"].items()),
        "",
        f"Besides these, {f['valid_mutations']} spec mutations stayed valid (e.g. another allowed value) and "
        "were accepted by both gates, as they should be.",
    ]
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"replace the figures in {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reliability-") as temp:
        ledger, cases, seconds = run_suites(Path(temp))
    result = figures(ledger, cases, seconds)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = result["tests"].get("failed", 0)
    if args.write and not failed:
        write_doc(text)
    elif args.write:
        print(f"\n{failed} test(s) failed: {DOC.relative_to(ROOT)} left unchanged", file=sys.stderr)
    return 1 if failed or result["artifacts_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
