"""The report stage: results.json (RunResults), report.md, plots, and manifest.json written last.

A run directory is complete only when manifest.json exists and every digest in it matches
(`verify_manifest`). The manifest covers every file except itself and the stage records the pipeline
runner writes after this stage has returned: this stage's own record and the promote stage's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import numpy as np
from pydantic import ValidationError

from optismith.errors import IncompleteRunError, StageError
from optismith.results import (
    Accuracy,
    ManifestEntry,
    RunManifest,
    RunResults,
    Selection,
    SourceInfo,
    StageRecord,
    VariantBenchmark,
)
from optismith.spec import ModelOptimizationSpec
from optismith.stages import plots
from optismith.stages.base import STAGE_ORDER, Stage, StageContext, new_record, register_stage
from optismith.stages.digests import stored_digest
from optismith.stages.report_markdown import render_report
from optismith.storage import Storage

MANIFEST_KEY = "manifest.json"
RESULTS_KEY = "results.json"
REPORT_KEY = "report.md"
# Records the runner stores after the report stage has returned, so no manifest can cover them.
WRITTEN_AFTER_MANIFEST = frozenset({"stages/report.json", "stages/promote.json"})
_LATER_STAGES = ("promote",)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spec_digest(spec: ModelOptimizationSpec) -> str:
    """sha256 of the spec as canonical JSON (camelCase keys, sorted, no whitespace)."""
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def stage_records(store: Storage) -> list[StageRecord]:
    """Every stage record in the run directory, in pipeline order (targets alphabetically)."""
    order = {name: i for i, name in enumerate((*STAGE_ORDER, *_LATER_STAGES))}
    records = []
    for key in store.list("stages/"):
        if not key.endswith(".json"):
            continue
        try:
            records.append(StageRecord.model_validate_json(store.read_bytes(key)))
        except ValidationError as error:
            raise StageError(f"{key} is not a valid stage record: {error.errors()[0]['msg']}",
                             where=store.key_uri(key), fix="re-run the stage that wrote it") from None
    return sorted(records, key=lambda r: (order.get(r.stage, len(order)), r.target or ""))


def assemble_results(ctx: StageContext) -> RunResults:
    records = stage_records(ctx.store)
    latest = {(r.stage, r.target): r for r in records}
    benchmarks: list[VariantBenchmark] = []
    accuracy: list[Accuracy] = []
    environment: dict[str, object] = {}
    for record in records:
        if record.stage == "benchmark" and record.status == "succeeded":
            benchmarks.extend(record.benchmarks)
            environment[record.target or "local"] = record.payload.get("environment", {})
        elif record.stage == "evaluate" and record.status == "succeeded":
            accuracy.extend(record.accuracy)
    inspect = latest.get(("inspect", None))
    source = None
    if inspect is not None and isinstance(inspect.payload.get("source"), dict):
        source = SourceInfo.model_validate(inspect.payload["source"])
    quantize = latest.get(("quantize", None))
    calibration: dict[str, object] = {}
    if quantize is not None:
        found = quantize.payload.get("calibration", quantize.payload)
        calibration = dict(found) if isinstance(found, dict) else {}
    select = latest.get(("select", None))
    selection = None
    if select is not None and select.status == "succeeded" and "selection" in select.payload:
        selection = Selection.model_validate(select.payload["selection"])
    metadata = ctx.manifest.metadata
    started = [r.started_at for r in records if r.started_at]
    return RunResults(
        name=metadata.name, namespace=metadata.namespace, generation=metadata.generation,
        spec_digest=spec_digest(ctx.spec), started_at=min(started) if started else _now(), finished_at=_now(),
        environment=environment, source=source, calibration=calibration, stages=records,
        variants=ctx.variants(), benchmarks=benchmarks, accuracy=accuracy, selection=selection,
    )


def _raw_latencies(ctx: StageContext, target: str) -> dict[str, np.ndarray]:
    if not ctx.has_record("benchmark", target):
        return {}
    found = {}
    for variant, key in ctx.record("benchmark", target).payload.get("raw_latencies", {}).items():
        if ctx.store.exists(key):
            found[variant] = np.load(io.BytesIO(ctx.store.read_bytes(key)), allow_pickle=False)
    return found


def write_plots(ctx: StageContext, results: RunResults) -> tuple[dict[str, str], list[str]]:
    """(caption -> key of each plot written, notes on plots that could not be made)."""
    missing = plots.matplotlib_missing()
    if missing:
        return {}, [f"plots skipped: {missing}"]
    scratch = ctx.scratch("report-plots")
    written: dict[str, str] = {}
    notes: list[str] = []
    batch = ctx.spec.selection.batch_size
    for target in sorted({b.target for b in results.benchmarks}):
        raw = _raw_latencies(ctx, target)
        if not raw:
            notes.append(f"no raw latencies were recorded for target {target}")
            continue
        key = f"plots/latency-{target}.png"
        plots.latency_distribution(raw, scratch / key, f"Latency per round, batch {batch}, target {target}")
        ctx.publish(key, scratch / key)
        written[f"Latency distribution on {target} (batch {batch})"] = key
    if results.selection is not None:
        key = "plots/tradeoff.png"
        plots.tradeoff(results.selection.candidates, scratch / key,
                       f"p50 latency vs size at batch {batch} (colour: accuracy drop)",
                       with_target=len({c.target for c in results.selection.candidates}) > 1)
        ctx.publish(key, scratch / key)
        written["Latency vs size vs accuracy drop"] = key
    return written, notes


def write_manifest(store: Storage) -> RunManifest:
    """Digest every file of the run directory (except the manifest) and write manifest.json."""
    entries = []
    for key in store.list():
        if key == MANIFEST_KEY:
            continue
        digest, size = stored_digest(store, key)
        entries.append(ManifestEntry(path=key, sha256=digest, size_bytes=size))
    results = next((e.sha256 for e in entries if e.path == RESULTS_KEY), None)
    if results is None:
        raise StageError("results.json is missing, so the run cannot be sealed", where=store.uri,
                         fix="run the report stage")
    manifest = RunManifest(complete=True, created_at=_now(), results_sha256=results, files=entries)
    store.write_bytes(MANIFEST_KEY, manifest.model_dump_json(indent=2).encode())
    return manifest


def verify_manifest(store: Storage) -> RunManifest:
    """The run's manifest, after checking every listed file's digest and size and that no other files
    appeared. Raises IncompleteRunError naming what is wrong."""
    where = store.key_uri(MANIFEST_KEY)
    if not store.exists(MANIFEST_KEY):
        raise IncompleteRunError("the run has no manifest.json: it has not finished, or it failed",
                                 where=where, fix="wait for the run to finish, or re-run its report stage")
    try:
        manifest = RunManifest.model_validate_json(store.read_bytes(MANIFEST_KEY))
    except ValidationError as error:
        raise IncompleteRunError(f"manifest.json is not a valid run manifest: {error.errors()[0]['msg']}",
                                 where=where, fix="re-run the report stage") from None
    problems: list[str] = []
    if not manifest.complete:
        problems.append("the manifest says the run is incomplete")
    listed = {entry.path for entry in manifest.files}
    for entry in manifest.files:
        if not store.exists(entry.path):
            problems.append(f"{entry.path} is missing")
            continue
        digest, size = stored_digest(store, entry.path)
        if digest != entry.sha256 or size != entry.size_bytes:
            problems.append(f"{entry.path} changed (sha256 {digest[:12]} != {entry.sha256[:12]})")
    results = next((e.sha256 for e in manifest.files if e.path == RESULTS_KEY), None)
    if results != manifest.results_sha256:
        problems.append("results.json does not match the manifest's results_sha256")
    extra = sorted(set(store.list()) - listed - {MANIFEST_KEY} - WRITTEN_AFTER_MANIFEST)
    problems.extend(f"{key} is not covered by the manifest" for key in extra)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IncompleteRunError(f"the run directory does not match its manifest: {shown}", where=where,
                                 fix="do not edit run directories; re-run the optimization for trustworthy results")
    return manifest


@register_stage
class ReportStage(Stage):
    name = "report"
    requires = ("select",)
    description = "Write results.json, report.md and plots, then seal the run with manifest.json."

    def run(self, ctx: StageContext) -> StageRecord:
        # A manifest from an earlier attempt would vouch for files this attempt is about to replace.
        if ctx.store.exists(MANIFEST_KEY):
            ctx.store.delete(MANIFEST_KEY)
        results = assemble_results(ctx)
        ctx.store.write_bytes(RESULTS_KEY, results.model_dump_json(indent=2).encode())
        written, notes = write_plots(ctx, results)
        ctx.store.write_bytes(REPORT_KEY, render_report(results, ctx.spec, written, notes).encode())
        manifest = write_manifest(ctx.store)
        ctx.progress(f"report written; {len(manifest.files)} files sealed in {MANIFEST_KEY}")
        return new_record(ctx, "report", message=f"wrote {RESULTS_KEY}, {REPORT_KEY} and {len(written)} plot(s)",
                          payload={"results": RESULTS_KEY, "report": REPORT_KEY, "plots": sorted(written.values()),
                                   "notes": notes, "manifest": MANIFEST_KEY, "files": len(manifest.files)})
