"""What a model is: its signature's tensors, which ops it runs, how many parameters and FLOPs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optismith.frameworks import import_tensorflow
from optismith.graphio import GraphIO
from optismith.models.formats import read_saved_model, select_meta_graph, signature_def
from optismith.models.graphwalk import is_call, reachable
from optismith.results import TensorInfo


def dtype_name(enum: int) -> str:
    return str(import_tensorflow().dtypes.as_dtype(enum).name)


def _shape(tensor_shape: Any) -> list[int | None]:
    if tensor_shape.unknown_rank:
        return []
    return [None if dim.size < 0 else int(dim.size) for dim in tensor_shape.dim]


def signature_tensors(directory: Path, signature: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of a SavedModel signature, each sorted by key. A missing signature raises
    ModelSignatureError naming the ones that exist."""
    definition = signature_def(select_meta_graph(read_saved_model(directory)), signature, str(directory))

    def infos(tensors: Any) -> list[TensorInfo]:
        return [TensorInfo(name=key, dtype=dtype_name(value.dtype), shape=_shape(value.tensor_shape))
                for key, value in sorted(tensors.items())]

    return infos(definition.inputs), infos(definition.outputs)


def op_histogram(graph_def: Any, fetches: list[str] | None = None) -> dict[str, int]:
    """Ops that can run for `fetches`, including the bodies of called functions (the call nodes
    themselves are wrappers and are not counted)."""
    library = {function.signature.name: function for function in graph_def.library.function}
    counts = Counter(r.node.op for r in reachable(graph_def, fetches) if not is_call(r.node, library))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def saved_model_op_histogram(directory: Path, signature: str) -> dict[str, int]:
    meta_graph = select_meta_graph(read_saved_model(directory))
    outputs = [t.name for t in meta_graph.signature_def[signature].outputs.values()]
    return op_histogram(meta_graph.graph_def, outputs)


def constant_parameters(graph_def: Any) -> int:
    """Elements of floating-point, non-scalar constants: a frozen graph's weights."""
    tf = import_tensorflow()
    total = 0
    for node in graph_def.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        if not tf.dtypes.as_dtype(tensor.dtype).is_floating or not tensor.tensor_shape.dim:
            continue
        total += math.prod(max(dim.size, 0) for dim in tensor.tensor_shape.dim)
    return total


def _dims(tensor: Any) -> list[int] | None:
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        return None
    return [int(d) for d in shape.as_list()]


def _conv(op: Any) -> int | None:
    out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    if out is None or kernel is None:
        return None
    return 2 * math.prod(out) * math.prod(kernel[:-1])  # kernel: spatial..., in_channels, out_channels


def _depthwise(op: Any) -> int | None:
    out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    if out is None or kernel is None:
        return None
    return 2 * math.prod(out) * math.prod(kernel[:-2])  # kernel: kh, kw, in_channels, multiplier


def _transposed_conv(op: Any) -> int | None:
    gradient, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
    if gradient is None or kernel is None:
        return None
    return 2 * math.prod(gradient) * math.prod(kernel[:-1])


def _matmul(op: Any) -> int | None:
    a, out = _dims(op.inputs[0]), _dims(op.outputs[0])
    if a is None or out is None:
        return None
    transposed = op.get_attr("transpose_a") if op.type in ("MatMul", "_FusedMatMul") else op.get_attr("adj_x")
    inner = a[-2] if transposed else a[-1]
    return 2 * math.prod(out) * inner


_FLOP_RULES: dict[str, Callable[[Any], int | None]] = {
    "Conv2D": _conv, "Conv3D": _conv, "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": _depthwise, "_FusedDepthwiseConv2dNative": _depthwise,
    "Conv2DBackpropInput": _transposed_conv, "Conv3DBackpropInputV2": _transposed_conv,
    "MatMul": _matmul, "_FusedMatMul": _matmul,
    "BatchMatMul": _matmul, "BatchMatMulV2": _matmul, "BatchMatMulV3": _matmul,
}


def flops_per_sample(graph_def: Any, io: GraphIO) -> int | None:
    """Multiply-adds x 2 of convolutions and matrix products for one sample, from static shapes with
    the batch dimension set to 1. None when other dynamic dimensions leave shapes unknown. Ops inside
    control-flow bodies and elementwise ops are not counted."""
    tf = import_tensorflow()
    batch_one = tf.compat.v1.GraphDef()
    batch_one.CopyFrom(graph_def)
    inputs = set(io.input_nodes)
    for node in batch_one.node:
        if node.op == "Placeholder" and node.name in inputs and node.attr["shape"].shape.dim:
            first = node.attr["shape"].shape.dim[0]
            if first.size < 0:
                first.size = 1
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(batch_one, name="")
    total = 0
    for op in graph.get_operations():
        rule = _FLOP_RULES.get(op.type)
        if rule is None:
            continue
        flops = rule(op)
        if flops is None:
            return None
        total += flops
    return total
