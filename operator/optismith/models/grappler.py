"""Offline graph optimization of a frozen graph: inference folding, then Grappler passes.

Grappler normally runs inside a Session every time a graph is loaded; running it once offline and
saving the result makes the rewritten graph an artifact that can be inspected, measured and shipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optismith.frameworks import import_tensorflow
from optismith.graphio import GraphIO

# Spec names that differ from the names Grappler's meta optimizer accepts: it silently ignores
# names it does not know, so a wrong name would quietly disable the pass.
_GRAPPLER_NAMES = {"remapper": "remap"}
_FUSED_BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV3", "BatchNormWithGlobalNormalization"})
CPU_DEVICE = "/device:CPU:0"


def grappler_name(spec_pass: str) -> str:
    return _GRAPPLER_NAMES.get(spec_pass, spec_pass)


def _copy(graph_def: Any) -> Any:
    tf = import_tensorflow()
    copy = tf.compat.v1.GraphDef()
    copy.CopyFrom(graph_def)
    return copy


def op_counts(graph_def: Any) -> Counter[str]:
    counts: Counter[str] = Counter(node.op for node in graph_def.node)
    for function in graph_def.library.function:
        counts.update(node.op for node in function.node_def)
    return counts


def run_grappler(graph_def: Any, io: GraphIO, passes: Sequence[str]) -> Any:
    """Run `passes` (spec names, in order, once) over the graph and return the rewritten GraphDef,
    with device assignments cleared again so that the runtime places nodes itself."""
    tf = import_tensorflow()
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    pinned = _copy(graph_def)
    for node in pinned.node:
        # The remapper only fuses (Conv2D+BiasAdd+Relu -> _FusedConv2D, ...) nodes placed on a CPU.
        node.device = CPU_DEVICE
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(pinned, name="")
        for name in io.output_nodes:
            # Grappler learns what must survive pruning from the "train_op" collection.
            graph.add_to_collection("train_op", graph.get_operation_by_name(name))
        meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(grappler_name(p) for p in passes)
    rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rewrite.min_graph_nodes = -1  # optimize small graphs too
    optimized = tf_optimizer.OptimizeGraph(config, meta_graph, verbose=False, graph_id=b"optismith",
                                           strip_default_attributes=False)
    for node in optimized.node:
        node.device = ""
    return optimized


@dataclass
class FoldResult:
    graph_def: Any
    status: str  # "applied", "no-op" or "failed"
    batch_norms_folded: int
    ops_before: int
    ops_after: int
    reason: str = ""

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "batch_norms_folded": self.batch_norms_folded,
                "ops_before": self.ops_before, "ops_after": self.ops_after, "reason": self.reason}


def fold_for_inference(graph_def: Any, io: GraphIO) -> FoldResult:
    """optimize_for_inference's batch-norm folding (FusedBatchNorm* into the preceding Conv2D/MatMul
    weights). Keras 3 decomposes BatchNormalization into Mul/Add, which it cannot fold (Grappler's
    constant folding and arithmetic passes handle those), so it reports "no-op" there and the graph
    is returned unchanged."""
    tf = import_tensorflow()
    from tensorflow.python.tools import optimize_for_inference_lib

    before = len(graph_def.node)
    norms_before = sum(1 for node in graph_def.node if node.op in _FUSED_BATCH_NORMS)
    if norms_before == 0:
        return FoldResult(graph_def, "no-op", 0, before, before,
                          reason="no FusedBatchNorm nodes to fold (decomposed batch norms are left to Grappler)")
    dtypes = [tf.dtypes.as_dtype(t.dtype).as_datatype_enum for t in io.inputs]
    try:
        folded = optimize_for_inference_lib.optimize_for_inference(
            _copy(graph_def), io.input_nodes, io.output_nodes, dtypes, toco_compatible=False)
    except Exception as error:  # the library asserts on graph shapes it does not understand
        return FoldResult(graph_def, "failed", 0, before, before, reason=f"{type(error).__name__}: {error}")
    norms_after = sum(1 for node in folded.node if node.op in _FUSED_BATCH_NORMS)
    if norms_after == norms_before:
        return FoldResult(graph_def, "no-op", 0, before, before,
                          reason="batch norms present but not in a foldable Conv2D/MatMul pattern")
    return FoldResult(folded, "applied", norms_before - norms_after, before, len(folded.node))
