"""The benchmark stage: every runnable variant against the reference, per target.

The reference is the baseline (tf-savedmodel) where it runs; on a GPU target without a GPU TensorFlow it is
ONNX Runtime's CUDA provider with its defaults (optismith.stages.benchmark.device). For each variant,
thread count and batch size the variant and the reference run in paired rounds in this process,
alternating which goes first, until the variant's median latency is known to within
`benchmark.stability` (95% distribution-free CI) or `benchmark.timeBudget` is spent (then the result is
flagged unstable). The speedup comes from those same rounds. The server scenario (Poisson arrivals, one
worker) runs once per variant, at the selection batch size with that batch's best thread count; then a
final at each batch size re-measures the fastest few head to head.

    sweep      planning the sweep; turning timings into ConfigResults
    candidate  measuring one candidate (variant or baseline) over the sweep and the server scenario
    final      the finalists, interleaved with each other and the baseline
    device     the reference and the environment on GPU targets
"""

from __future__ import annotations

from typing import Any

from optismith import catalog
from optismith.errors import StageError
from optismith.results import StageRecord, VariantBenchmark
from optismith.runs import layout
from optismith.runs.eligibility import device_of, load_options, resolve
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.stages.benchmark.candidate import Baseline, CandidateBench, Feeds
from optismith.stages.benchmark.device import choose_reference, environment
from optismith.stages.benchmark.final import Runnable, run_finals
from optismith.stages.benchmark.sweep import BenchmarkPlan


class BenchmarkStage(Stage):
    name = "benchmark"
    requires = ("inspect",)
    per_target = True

    def run(self, ctx: StageContext) -> StageRecord:
        variants = ctx.variants()
        chosen = choose_reference(ctx, variants)
        plan = BenchmarkPlan.from_spec(ctx.spec, device_of(ctx.target))
        feeds = Feeds(ctx.read_arrays(layout.SAMPLE_INPUTS))
        reference = Baseline(ctx, chosen.record, chosen.runtime, chosen.options, feeds, plan)
        bench = CandidateBench(ctx, plan, reference, feeds)
        versions = dict(chosen.runtime.versions())
        results: list[VariantBenchmark] = [chosen.skipped_baseline] if chosen.skipped_baseline else []
        runnable: dict[str, Runnable] = {}
        final: dict[str, Any] = {}
        try:
            reference.prepare()
            for variant in variants:
                if variant.name in (catalog.BASELINE, chosen.record.name) or variant.status != "built":
                    continue
                runtime, why = resolve(variant, ctx.target)
                if runtime is None:
                    results.append(VariantBenchmark(variant=variant.name, target=ctx.target_name,
                                                    status="skipped", reason=why))
                    ctx.progress(f"{variant.name}: {why}")
                    continue
                versions.update(runtime.versions())
                entry = catalog.find(variant.name)
                options = load_options(entry, ctx.spec, ctx.target) if entry else {}
                runnable[variant.name] = Runnable(variant, runtime, options)
                try:
                    results.append(bench.measure_variant(variant, runtime, options))
                except Exception as error:
                    results.append(VariantBenchmark(variant=variant.name, target=ctx.target_name, status="failed",
                                                    reason=f"{type(error).__name__}: {error}"[:2000]))
                    ctx.progress(f"{variant.name}: failed: {results[-1].reason[:300]}")
            baseline_result = bench.measure_baseline()
            if baseline_result.status == "built":
                results, final = run_finals(bench, results, baseline_result, runnable)
        finally:
            reference.close()
        if baseline_result.status != "built":
            raise StageError(f"the reference {chosen.record.name} could not be measured: {baseline_result.reason}",
                             where=ctx.store.uri, fix="check that the source model runs with the given inputs")
        measured = sum(1 for r in results if r.status == "built")
        unstable = sorted({r.variant for r in [baseline_result, *results] if any(not c.stable for c in r.configs)})
        message = f"measured {measured + 1} variant(s) on {ctx.target_name}"
        if chosen.record.name != catalog.BASELINE:
            message += f" against {chosen.record.name} (ONNX Runtime CUDA defaults: {catalog.BASELINE} cannot run here)"
        if unstable:
            message += f"; unstable within the time budget: {', '.join(unstable)}"
        measured_results = [baseline_result, *results]
        return new_record(ctx, self.name, message=message, benchmarks=measured_results, payload={
            "environment": environment(ctx, versions),
            "reference": chosen.note,
            "plan": plan.describe(),
            "final": final,
            "raw_latencies": {r.variant: layout.raw_latencies(ctx.target_name, r.variant, plan.selection_batch)
                              for r in measured_results if str(plan.selection_batch) in r.best_by_batch},
        })
