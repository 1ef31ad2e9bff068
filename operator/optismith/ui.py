"""Terminal display for local runs: a progress bar over the plan's steps and the final table."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from optismith.pipeline import Plan, StageStep

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
        label = f"{step.stage}@{step.target}" if step.target else step.stage
        if state == "started":
            self._progress.update(self._task, description=label, detail="")
        else:
            self._progress.advance(self._task)
            if self.enabled:
                self._progress.console.print(f"  {label}: {state}")

    def progress(self, message: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, detail=message[:70])


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def final_table(results: dict[str, Any], run_uri: str, seconds: float, batch_size: int) -> None:
    selection = results.get("selection") or {}
    candidates = {(c["variant"], c["target"]): c for c in selection.get("candidates", [])}
    table = Table(title=f"Variants (batch {batch_size}, best thread count per variant)")
    for column in ("variant", "target", "status", "p50 ms", "p99 ms", "speedup", "throughput/s", "size",
                   "accuracy drop", "gates"):
        left = column in ("variant", "target", "status", "gates")
        table.add_column(column, justify="left" if left else "right", no_wrap=column != "gates",
                         overflow="fold" if column == "gates" else "ellipsis")
    benchmarks = {(b["variant"], b["target"]): b for b in results.get("benchmarks", [])}
    statuses = {v["name"]: v for v in results.get("variants", [])}
    rows_seen = set()
    for (variant, target), candidate in sorted(candidates.items(),
                                               key=lambda kv: (kv[1]["latency_p50_ms"] or 1e18)):
        rows_seen.add(variant)
        mark = "WINNER" if variant == selection.get("winner") and target == selection.get("winner_target") else ""
        gates = "pass" if candidate["passed"] else "; ".join(candidate.get("reasons", []))[:60]
        size = candidate.get("size_bytes")
        drop = candidate.get("accuracy_drop")
        table.add_row(
            f"{variant} {mark}".strip(), target, benchmarks.get((variant, target), {}).get("status", "built"),
            _fmt(candidate.get("latency_p50_ms"), "{:.3f}"), _fmt(candidate.get("latency_p99_ms"), "{:.3f}"),
            _fmt(candidate.get("speedup"), "{:.2f}x"), _fmt(candidate.get("throughput_per_s"), "{:.0f}"),
            "-" if size is None else f"{size / 1024:.0f} KiB",
            "-" if drop is None else f"{drop * 100:.2f}%", gates,
        )
    for name, variant in statuses.items():
        if name not in rows_seen:
            table.add_row(name, "-", variant["status"], "-", "-", "-", "-", "-", "-",
                          (variant.get("reason") or "")[:160])
    console.print(table)
    winner = selection.get("winner")
    if winner:
        console.print(f"[bold green]Winner:[/] {winner} on {selection.get('winner_target')} — "
                      f"{selection.get('message', '')}")
    else:
        console.print(f"[bold yellow]No variant passed:[/] {selection.get('message', '')}")
    console.print(f"Run directory: {run_uri}  ({seconds:.0f}s)  report: {run_uri}/report.md")
