"""report.md: the human-readable account of a run, rendered from RunResults."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from optismith.results import RunResults, Selection
from optismith.spec import ModelOptimizationSpec


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def _num(value: float | None, pattern: str = "{:.3f}") -> str | None:
    return None if value is None else pattern.format(value)


def _size(value: int | None) -> str | None:
    if value is None:
        return None
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.2f}%"


def _finalists_line(selection: Selection) -> str:
    """The final at the selection batch size: each finalist's p50 and 95% interval, and the tie if any."""
    listed = "; ".join(f"`{f.variant}` {f.p50_ms:.3f} ms [{f.ci95_low_ms:.3f}, {f.ci95_high_ms:.3f}]"
                       + ("" if f.passed else " (failed a gate)") for f in selection.finalists)
    line = (f"- Final at batch {selection.batch_size} (median of per-round medians, 95% CI; "
            f"{selection.extra_rounds} extra round(s) while the fastest overlapped): {listed}")
    if selection.tie:
        line += (f". **Tie** within noise: {', '.join(f'`{name}`' for name in selection.tied)}; "
                 f"tie-break: {selection.tie_break}")
    else:
        line += ". No tie: the winner's interval overlaps no other passing finalist's"
    return line


def _summary(results: RunResults, spec: ModelOptimizationSpec) -> list[str]:
    lines = [f"# Optismith report: {results.name}", ""]
    selection = results.selection
    if selection is None:
        lines.append("**No selection was made** (the select stage did not run or failed).")
    elif selection.winner:
        lines.append(f"**Winner: `{selection.winner}` on `{selection.winner_target}`.** {selection.message}")
    else:
        lines.append(f"**No variant passed the gates.** {selection.message}")
    constraints = spec.selection.constraints
    lines += [
        "",
        f"- Objective: `{spec.selection.objective}` at batch size {spec.selection.batch_size}; constraints: "
        f"max accuracy drop {constraints.max_accuracy_drop}, max p99 latency {constraints.max_latency or '-'}, "
        f"max size {constraints.max_size or '-'}",
        f"- Run: {results.started_at} .. {results.finished_at}; spec digest `{results.spec_digest[:16]}`",
    ]
    if selection is not None and selection.finalists:
        lines.append(_finalists_line(selection))
    if results.source is not None:
        source = results.source
        inputs = ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in source.inputs)
        lines.append(f"- Source: {source.format} at `{source.uri}`, signature `{source.signature}`, inputs "
                     f"{inputs}, {source.parameter_count:,} parameters, {source.op_count} ops, "
                     f"{_size(source.size_bytes)}")
    if results.calibration:
        details = ", ".join(f"{k}: {v}" for k, v in sorted(results.calibration.items())
                            if isinstance(v, str | int | float | bool))
        lines.append(f"- Calibration: {details or 'recorded in results.json'}")
    if results.isolation:  # stages confined alike on one line: "inspect, freeze: bwrap: no network, ..."
        alike: dict[str, list[str]] = {}
        for label, isolation in results.isolation.items():
            alike.setdefault(isolation.summary, []).append(label)
        lines.append("- Isolation of the stages that ran the model: " + "; ".join(
            f"{', '.join(labels)}: {summary}" for summary, labels in alike.items()))
    return lines


def _variants(results: RunResults) -> list[str]:
    rows = []
    for v in results.variants:
        n = v.numerics
        rows.append([v.name, v.runtime, v.status, v.reason[:160], _size(v.size_bytes), v.op_count,
                     _num(n.max_abs_error, "{:.2e}") if n else None, _num(n.relative_error, "{:.2e}") if n else None,
                     _num(n.cosine_similarity, "{:.6f}") if n else None,
                     _percent(n.top1_agreement) if n else None])
    return ["## Variants", "", *table(
        ["variant", "runtime", "status", "reason", "size", "ops", "max abs error", "relative error", "cosine",
         "top-1 agreement"], rows)]


def _latency(results: RunResults) -> list[str]:
    lines = ["## Latency", "",
             "Best thread count per batch size. Variant and baseline ran in paired rounds in one process; the "
             "95% CI is a distribution-free interval of the median; *unstable* means it did not narrow to the "
             "stability target within the time budget. Throughput is samples/s (offline scenario); the server "
             "scenario replays Poisson arrivals (default: half the measured capacity) against one worker, at the "
             "selection batch size only. At each batch size the fastest variants (the final, "
             "`benchmark.finalists`) ran once more, interleaved with each other and the baseline; their rows "
             "there are the final's.", ""]
    targets = sorted({b.target for b in results.benchmarks})
    for target in targets:
        rows: list[list[object]] = []
        for bench in (b for b in results.benchmarks if b.target == target):
            if bench.status != "built":
                rows.append([bench.variant, None, None, None, None, None, None, bench.status, None, None, None,
                             None])
                continue
            for key in sorted(bench.best_by_batch, key=int):
                c = bench.best_by_batch[key]
                rows.append([bench.variant, c.batch_size, c.threads, _num(c.latency.p50_ms),
                             _num(c.latency.p90_ms), _num(c.latency.p99_ms),
                             f"{c.latency.ci95_low_ms:.3f}-{c.latency.ci95_high_ms:.3f}",
                             "yes" if c.stable else "**unstable**", f"{c.speedup:.2f}x",
                             _num(c.throughput_per_s, "{:.0f}"), _num(c.server_p99_ms), _num(c.server_qps, "{:.0f}")])
        lines += [f"### Target `{target}`", "", *table(
            ["variant", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "p50 95% CI", "stable", "speedup",
             "throughput/s", "server p99 ms", "server qps"], rows), ""]
        memory = [[b.variant, _num(b.cold_start_ms, "{:.1f}"), _size(b.peak_rss_bytes), b.reason[:160]]
                  for b in results.benchmarks if b.target == target]
        lines += table(["variant", "cold start ms", "peak RSS increase", "notes"], memory)
        lines.append("")
    return lines


def _accuracy(results: RunResults) -> list[str]:
    rows = [[a.variant, a.target, a.metric, f"{a.value:.4f}", _percent(a.drop), a.samples,
             "yes" if a.labelled else "no (vs baseline outputs)"] for a in results.accuracy]
    return ["## Accuracy", "", *table(["variant", "target", "metric", "value", "drop", "samples", "labelled"],
                                      rows)]


def _candidates(results: RunResults) -> list[str]:
    if results.selection is None:
        return []
    rows = [[c.variant, c.target, _num(c.objective_value, "{:.4g}"), _num(c.latency_p50_ms),
             _num(c.latency_p99_ms), _size(c.size_bytes), _percent(c.accuracy_drop),
             _num(c.speedup, "{:.2f}x"), "pass" if c.passed else "fail", "*" if c.pareto else "",
             "; ".join(c.reasons)] for c in results.selection.candidates]
    return [f"## Candidates (objective `{results.selection.objective}`, batch {results.selection.batch_size})",
            "", "`*` marks the Pareto front over (p50 latency, size, accuracy drop). The same rows are in "
            "`candidates.csv`; see *Reading the numbers* below for what each column is.", "",
            *table(["variant", "target", "objective", "p50 ms", "p99 ms", "size", "accuracy drop", "speedup",
                    "gates", "Pareto", "reasons"], rows)]


READING_NOTES = (
    "**objective** is what the selection ranked by. For `latencyP50` it is the baseline's p50 divided by the "
    "variant's speedup (a *paired* estimate), not the p50 column: on a shared host whose speed drifts, the "
    "speedup, measured against the baseline in the same interleaved rounds, ranks variants reliably where "
    "absolute medians measured minutes apart do not. For `latencyP99` and `throughput` it is that column, "
    "for `size` the bytes.",
    "**p50 / p90 / p99 ms** are the variant's own per-inference latencies over all its rounds, at the best "
    "thread count; **speedup** is baseline p50 / variant p50 *within the same paired rounds*. So the speedup "
    "order can differ from the p50 order when the host's speed changed between two variants' rounds; the "
    "speedup (and so the objective) is the fairer comparison.",
    "**throughput/s** counts samples per second in the offline scenario (back-to-back batches). **server "
    "qps** counts *requests* per second, each of the row's batch size, that a single worker completed under "
    "Poisson arrivals offered at half its measured capacity; **server p99** includes queueing. Compare server "
    "qps x batch with throughput. A server p99 far above p99 means requests queued: the host stalled during "
    "the (separate, unpaired) server run, or arrivals bunched up.",
    "**accuracy drop** is the source model's metric minus the variant's (positive = worse), on the evaluation "
    "set (top-1 with labels, else agreement with the source's outputs).",
)


def _reading_notes() -> list[str]:
    return ["## Reading the numbers", "", *(f"- {note}" for note in READING_NOTES), ""]


def _environment(results: RunResults) -> list[str]:
    lines = ["## Environment", ""]
    for target, env in sorted(results.environment.items()):
        if not isinstance(env, dict):
            continue
        cpu: dict[str, Any] = env.get("cpu", {})
        versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
        threads = ", ".join(f"{k}={v}" for k, v in env.get("thread_env", {}).items()) or "none set"
        memory = env.get("total_memory_bytes")
        lines += [
            f"### Target `{target}`", "",
            f"- CPU: {cpu.get('model')} ({cpu.get('architecture')}); flags: {', '.join(cpu.get('flags', []))}",
            f"- Cores: {env.get('logical_cores')} logical, {env.get('affinity_cores')} usable by the process, "
            f"cgroup quota {env.get('cgroup_cpu_quota') or 'none'}; memory {_size(memory) if memory else '-'}",
            f"- OS: {env.get('os')}; Python {env.get('python')}",
            f"- Versions: {versions}",
            f"- Thread environment: {threads}", "",
        ]
    return lines


def render_report(results: RunResults, spec: ModelOptimizationSpec, plots: dict[str, str],
                  notes: Sequence[str] = ()) -> str:
    """The whole report. `plots` maps a caption to a path relative to the run directory."""
    lines = [*_summary(results, spec), "", *_candidates(results), "", *_reading_notes(), *_latency(results),
             *_accuracy(results), "", *_variants(results), ""]
    if plots or notes:
        lines += ["## Plots", ""]
        lines += [f"![{caption}]({path})" for caption, path in plots.items()]
        lines += [f"- {note}" for note in notes]
        lines.append("")
    lines += _environment(results)
    return "\n".join(lines).rstrip() + "\n"
