"""What tf2onnx cannot convert by itself: custom op handlers, and the check that nothing was left unconverted.

tf2onnx 1.17 has no handler for `Erfc`, which TensorFlow uses for Keras' exact GELU
(`0.5 * x * erfc(-x / sqrt(2))`, Keras' default `approximate=False`). Left alone, tf2onnx logs the op and
keeps it in the graph as-is, and the first thing to notice is ONNX Runtime's `InvalidGraph: No Op registered
for Erfc` (OpenVINO's ONNX frontend fails on the same node). The handler writes erfc(x) as 1 - erf(x), ONNX's
`Erf` being exact. When its input is a negation (`x * -c`, as in GELU) it writes 1 + erf(x * c) instead, the
form ONNX Runtime's transformer optimizer recognises as GELU.

After conversion, `unconverted_ops` lists what tf2onnx left in the graph that ONNX does not define, so the
build fails naming those ops instead of producing a model no runtime loads.
"""

from __future__ import annotations

from typing import Any

_registered = False


def register_handlers() -> None:
    """Add the handlers to tf2onnx's registry (once per process; tf2onnx's registry is global)."""
    global _registered
    if _registered:
        return
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx: Any, node: Any, **kwargs: Any) -> None:  # ONNX Erf exists from opset 9
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, dtype=dtype))
            argument, combine = _negated(ctx, node.inputs[0], dtype), "Add"
            if argument is None:
                argument, combine = node.input[0], "Sub"
            node.type = "Erf"
            ctx.replace_inputs(node, [argument])
            result = ctx.insert_new_node_on_output(combine, node.output[0], name=utils.make_name(node.name))
            ctx.replace_inputs(result, [one.output[0], node.output[0]])  # 1 - erf(x), or 1 + erf(-x)

    _registered = True


def _negated(ctx: Any, producer: Any, dtype: Any) -> str | None:
    """The name of -v when `producer` computes v as x * c with a constant c < 0, (-y) * c with c > 0, or
    -y (so erfc(v) = 1 + erf(-v)); None otherwise. A new Mul by |c| is made so the original node's other uses stay."""
    import numpy as np
    from tf2onnx import utils

    if producer is None:
        return None
    if producer.type == "Neg":
        return str(producer.input[0])
    if producer.type != "Mul":
        return None
    for index, candidate in enumerate(producer.inputs):  # (-y) * c with c > 0, as tf.nn.gelu writes it
        other = producer.inputs[1 - index]
        if candidate is not None and candidate.type == "Neg" and other is not None and other.is_const():
            value = other.get_tensor_value(as_list=False)
            if value.size == 1 and float(value.reshape(())) > 0:
                scaled = ctx.make_node("Mul", [candidate.input[0], producer.input[1 - index]],
                                       name=utils.make_name(f"{producer.name}/negated"))
                return str(scaled.output[0])
    for index, candidate in enumerate(producer.inputs):
        if candidate is not None and candidate.is_const():
            value = candidate.get_tensor_value(as_list=False)
            if value.size == 1 and float(value.reshape(())) < 0:
                positive = ctx.make_const(utils.make_name(f"{producer.name}/abs"),
                                          np.abs(value).astype(dtype))
                scaled = ctx.make_node("Mul", [producer.input[1 - index], positive.output[0]],
                                       name=utils.make_name(f"{producer.name}/negated"))
                return str(scaled.output[0])
    return None


def unconverted_ops(model: Any) -> dict[str, int]:
    """Op types in `model` (an onnx.ModelProto) that ONNX does not define in their domain, with counts:
    what tf2onnx left unconverted. Custom-domain ops (com.microsoft, ...) are the runtime's business."""
    from onnx import defs

    left: dict[str, int] = {}
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx") and not defs.has(node.op_type):
            left[node.op_type] = left.get(node.op_type, 0) + 1
    return left


class UnconvertedOps(Exception):
    """tf2onnx left TensorFlow ops in the ONNX graph that no ONNX runtime can run."""

    def __init__(self, ops: dict[str, int], converter: str) -> None:
        listed = ", ".join(f"{op} (x{count})" for op, count in sorted(ops.items()))
        super().__init__(f"{converter} has no handler for TensorFlow op(s) {listed}: the ONNX model would not "
                         "load. Use a variant of another toolchain, or replace the op in the model")
