"""The report stage: results.json (RunResults), report.md, plots, and manifest.json written last.

A run directory is complete only when manifest.json exists and every digest in it matches
(optismith.runs.manifest.verify_manifest). The manifest covers every file except itself and the stage
records the pipeline runner writes after this stage has returned: this stage's own record and the
promote stage's.

    assemble  the stage records into RunResults;  markdown  report.md;  plots  the PNGs;
    table     candidates.csv
"""

from __future__ import annotations

import io

import numpy as np

from optismith.results import RunResults, StageRecord
from optismith.runs import layout
from optismith.runs.manifest import write_manifest
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.stages.report import plots
from optismith.stages.report.assemble import assemble_results
from optismith.stages.report.markdown import render_report
from optismith.stages.report.table import candidates_csv


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
        key = layout.plot(f"latency-{target}")
        plots.latency_distribution(raw, scratch / key, f"Latency per round, batch {batch}, target {target}")
        ctx.publish(key, scratch / key)
        written[f"Latency distribution on {target} (batch {batch})"] = key
    for target in sorted({b.target for b in results.benchmarks}):
        measured = [b for b in results.benchmarks if b.target == target]
        if sum(len(b.best_by_batch) for b in measured) < 2:
            continue  # one batch size of one variant is no curve
        key = layout.plot(f"throughput-latency-{target}")
        plots.throughput_latency(measured, scratch / key, f"Throughput vs p99 latency across batch sizes, {target}")
        ctx.publish(key, scratch / key)
        written[f"Throughput vs latency per variant on {target}"] = key
    if results.selection is not None:
        key = layout.plot("tradeoff")
        plots.tradeoff(results.selection.candidates, scratch / key,
                       f"p50 latency vs size at batch {batch}",
                       with_target=len({c.target for c in results.selection.candidates}) > 1)
        ctx.publish(key, scratch / key)
        written["Latency vs size vs accuracy drop"] = key
    return written, notes


class ReportStage(Stage):
    name = "report"
    requires = ("select",)

    def run(self, ctx: StageContext) -> StageRecord:
        # A manifest from an earlier attempt would vouch for files this attempt is about to replace.
        if ctx.store.exists(layout.MANIFEST):
            ctx.store.delete(layout.MANIFEST)
        results = assemble_results(ctx)
        ctx.store.write_bytes(layout.RESULTS, results.model_dump_json(indent=2).encode())
        written, notes = write_plots(ctx, results)
        ctx.store.write_bytes(layout.REPORT, render_report(results, ctx.spec, written, notes).encode())
        if results.selection is not None:
            ctx.store.write_bytes(layout.CANDIDATES_CSV, candidates_csv(results.selection).encode())
        manifest = write_manifest(ctx.store)
        ctx.progress(f"report written; {len(manifest.files)} files sealed in {layout.MANIFEST}")
        return new_record(ctx, self.name,
                          message=f"wrote {layout.RESULTS}, {layout.REPORT} and {len(written)} plot(s)",
                          payload={"results": layout.RESULTS, "report": layout.REPORT,
                                   "plots": sorted(written.values()), "notes": notes, "manifest": layout.MANIFEST,
                                   "candidates": layout.CANDIDATES_CSV if results.selection else None,
                                   "files": len(manifest.files)})
