"""candidates.csv: the selection's candidates, one row each, in base units, for spreadsheets and scripts
(the same numbers as report.md's candidate table and results.json)."""

from __future__ import annotations

import csv
import io

from optismith.results import Selection

COLUMNS = ("variant", "target", "passed", "pareto", "winner", "objective", "objective_value", "latency_p50_ms",
           "latency_p99_ms", "throughput_per_s", "speedup", "size_bytes", "accuracy_drop", "reasons")


def candidates_csv(selection: Selection) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in selection.candidates:
        winner = c.variant == selection.winner and c.target == selection.winner_target
        writer.writerow([c.variant, c.target, c.passed, c.pareto, winner, selection.objective,
                         *("" if v is None else v for v in (c.objective_value, c.latency_p50_ms, c.latency_p99_ms,
                                                             c.throughput_per_s, c.speedup, c.size_bytes,
                                                             c.accuracy_drop)),
                         "; ".join(c.reasons)])
    return buffer.getvalue()
