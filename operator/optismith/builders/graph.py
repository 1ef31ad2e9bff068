"""TensorFlow graph variants: the frozen graph through inference folding and offline Grappler
(`tf-grappler`), and the baseline under XLA JIT (`tf-xla`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs
from optismith.models.freezing import write_graph
from optismith.models.grappler import fold_for_inference, grappler_name, op_counts, run_grappler


def grappler(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    passes = list(inputs.ctx.spec.optimize.passes)
    inputs.ctx.progress(f"running Grappler: {', '.join(passes)}")
    graph_def, io, source = inputs.frozen()
    folded = fold_for_inference(graph_def, io)
    optimized = run_grappler(folded.graph_def, io, passes)
    write_graph(optimized, io, artifact.parent, artifact.name)
    before, after = op_counts(graph_def), op_counts(optimized)
    return {
        "source": source,
        "passes": passes,
        "grappler_optimizers": [grappler_name(p) for p in passes],
        "ops_before": sum(before.values()),
        "ops_after": sum(after.values()),
        "op_histogram": dict(after.most_common()),
        "optimize_for_inference": folded.summary(),
        "op_count": sum(after.values()),
    }


def xla(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    """The baseline SavedModel itself: XLA compiles its serving function when the tf-xla runtime loads it."""
    shutil.copytree(inputs.baseline(), artifact, dirs_exist_ok=True)
    return {"signature": inputs.signature, "jit_compile": True,
            "note": "the baseline SavedModel; XLA compiles its serving function when loaded"}
