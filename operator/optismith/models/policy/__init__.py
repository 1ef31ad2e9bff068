"""Refusing models that reach outside themselves, before TensorFlow loads, optimizes or converts them.

A TensorFlow model is a program. Every op of every graph and function it holds (signatures, init ops, the saver,
assets, and every library function, called or not) is checked against a reviewed allow-list:

    ops        the reviewed lists (data): allowed stateful ops, gated ops, refused ops by category
    reviewed   the TensorFlow registry those lists were reviewed against (an op missing from it is refused)
    classify   one op's verdict
    graph      a GraphDef indexed for walking (closures, where a tensor comes from)
    saver      the legitimate saver subgraphs; assets: asset files and tables read from them
    scan       the scan of a SavedModel, a TF1 checkpoint or a frozen graph; `enforce` turns findings into an error
"""

from __future__ import annotations

from optismith.errors import UnsafeModelError
from optismith.models.policy.scan import (
    Finding,
    ScanReport,
    scan_checkpoint,
    scan_graph_def,
    scan_saved_model,
    scan_source,
)

SHOWN_FINDINGS = 8


def _listed(findings: list[Finding]) -> str:
    shown = "; ".join(f"{f.op} at {f.where} ({f.category.name}: {f.reason})" for f in findings[:SHOWN_FINDINGS])
    more = len(findings) - SHOWN_FINDINGS
    return shown + (f"; and {more} more" if more > 0 else "")


def enforce(report: ScanReport, allow_ops: list[str], where: str) -> None:
    """Raise UnsafeModelError naming every refused op, where it sits, and how to allow it (when it may be)."""
    refused = report.refused(allow_ops)
    if not refused:
        return
    allowable = sorted({f.op for f in refused if f.allowable})
    fixed = sorted({f.op for f in refused if not f.allowable})
    fixes = []
    if allowable:
        fixes.append(f"if you trust this model, list the ops in spec.security.allowOps: [{', '.join(allowable)}]")
    if fixed:
        fixes.append(f"{', '.join(fixed)} cannot be allowed (the scan cannot see what they run, or the model is "
                     "built to make TensorFlow touch the host): re-export the model without them")
    ops_named = sorted({f.op for f in refused})
    raise UnsafeModelError(
        f"the model holds ops that reach outside it: {', '.join(ops_named)} ({_listed(refused)})",
        where=where, fix="; ".join(fixes) or "re-export the model without them",
    )


__all__ = ["Finding", "ScanReport", "enforce", "scan_checkpoint", "scan_graph_def", "scan_saved_model", "scan_source"]
