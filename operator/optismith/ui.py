"""Terminal display for local runs: a progress bar over the plan's steps and the final table.

Only progress and results reach the terminal: the libraries' output goes to the stages' log files
(optismith.pipeline.capture), and `--verbose` streams it here dimmed (`print_log_line`).
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from optismith.pipeline import Plan, StageStep
from optismith.results import RunResults
from optismith.runs import layout

# Piped output (CI logs, `make demo | tee`) gets a table wide enough to read, not 80 columns.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)


class RunDisplay:
    def __init__(self, plan: Plan, enabled: bool = True) -> None:
        self.plan = plan
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=console,
            disable=not enabled, transient=False,
            # Not through the display: a stage's stderr is redirected to its log file while it runs.
            redirect_stdout=False, redirect_stderr=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RunDisplay:
        self._progress.__enter__()
        self._task = self._progress.add_task("plan", total=len(self.plan.steps), detail="")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._progress.__exit__(kind, value, traceback)

    def on_step(self, step: StageStep, state: str) -> None:
        if self._task is None:
            return
        label = step.label
        if state == "started":
            self._progress.update(self._task, description=label, detail="")
        else:
            self._progress.advance(self._task)
            if self.enabled:
                self._progress.console.print(f"  {label}: {state}")

    def progress(self, message: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, detail=message[:70])


def print_log_line(log: str, line: str) -> None:
    """`--verbose`: one line of a stage's log, dimmed and marked with its file."""
    console.print(f"[dim]{log}: {line}[/]", markup=True, highlight=False, soft_wrap=True)


def status_word(variant_status: str, benchmark_status: str | None, passed: bool | None) -> str:
    """One vocabulary for the table: built (not measured), measured (did not pass the gates), passed,
    failed (build, numerics or measurement), skipped."""
    if variant_status in ("failed", "rejected") or benchmark_status in ("failed", "rejected"):
        return "failed"
    if variant_status == "skipped" or benchmark_status == "skipped":
        return "skipped"
    if benchmark_status is None:
        return "built"
    return "passed" if passed else "measured"


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def final_table(results: RunResults, run_uri: str, seconds: float, batch_size: int) -> None:
    selection = results.selection
    table = Table(title=f"Variants (batch {batch_size}, best thread count per variant)")
    for column in ("variant", "target", "status", "p50 ms", "p99 ms", "speedup", "throughput/s", "size",
                   "accuracy drop", "gates"):
        left = column in ("variant", "target", "status", "gates")
        table.add_column(column, justify="left" if left else "right", no_wrap=column != "gates",
                         overflow="fold" if column == "gates" else "ellipsis")
    benchmarks = {(b.variant, b.target): b for b in results.benchmarks}
    variant_status = {v.name: v.status for v in results.variants}
    candidates = sorted(selection.candidates if selection else [],
                        key=lambda c: c.latency_p50_ms if c.latency_p50_ms is not None else 1e18)
    shown = set()
    for candidate in candidates:
        shown.add(candidate.variant)
        winner = selection is not None and (candidate.variant, candidate.target) == (selection.winner,
                                                                                     selection.winner_target)
        bench = benchmarks.get((candidate.variant, candidate.target))
        table.add_row(
            f"{candidate.variant} {'WINNER' if winner else ''}".strip(), candidate.target,
            status_word(variant_status.get(candidate.variant, "built"), bench.status if bench else None,
                        candidate.passed),
            _fmt(candidate.latency_p50_ms, "{:.3f}"), _fmt(candidate.latency_p99_ms, "{:.3f}"),
            _fmt(candidate.speedup, "{:.2f}x"), _fmt(candidate.throughput_per_s, "{:.0f}"),
            "-" if candidate.size_bytes is None else f"{candidate.size_bytes / 1024:.0f} KiB",
            "-" if candidate.accuracy_drop is None else f"{candidate.accuracy_drop * 100:.2f}%",
            "pass" if candidate.passed else "; ".join(candidate.reasons)[:60],
        )
    for variant in results.variants:
        if variant.name not in shown:
            table.add_row(variant.name, "-", status_word(variant.status, None, None), "-", "-", "-", "-", "-", "-",
                          variant.reason[:160])
    console.print(table)
    if selection is not None and selection.winner:
        console.print(f"[bold green]Winner:[/] {selection.winner} on {selection.winner_target} — {selection.message}")
    else:
        console.print(f"[bold yellow]No variant passed:[/] {selection.message if selection else 'no selection'}")
    console.print(f"Run directory: {run_uri}  ({seconds:.0f}s)  report: {run_uri}/{layout.REPORT}")
