"""Rewrites of tf2onnx's output into the forms ONNX Runtime's transformer optimizer recognises.

The optimizer's fusions (`onnxruntime.transformers.optimizer`) match the graphs PyTorch's exporter writes;
tf2onnx writes the same maths differently, so on a Keras encoder they fuse nothing. Each rewrite here is
exact maths (outputs equal up to float rounding) and leaves every graph it does not match untouched:

- **einsum**: a two-operand Einsum that is a batched matrix product (one contracted index, one free index on
  each side: Keras MultiHeadAttention's `btnh,bsnh->bnts` and `bnts,bsnh->btnh`) becomes Transpose + MatMul
  (+ Transpose), the Q.K^T / scores.V shape the Attention fusion looks for. The transformer ONNX model is
  converted with tf2onnx's own Einsum decomposition off, since it writes Shape/Gather/ReduceProd chains no
  fusion matches.
- **scale**: unmasked attention's `Softmax(QK^T * c)` becomes `Softmax(QK^T / (1/c))`: the optimizer's
  no-mask Attention pattern has a Div there (with a mask, `Add(mask)` sits between and Mul matches).
- **layernorm**: TensorFlow's LayerNormalization as tf2onnx converts it, `x * s + (beta - mean * s)` with
  `s = gamma / sqrt(var + eps)`, becomes ONNX's LayerNormalization (opset 17 and later), which the
  optimizer fuses with the residual Add into SkipLayerNormalization.
- **bias**: Keras' EinsumDense (the Q/K/V projections) as `Reshape(x @ W, [.., heads, size]) + b[heads,
  size]` becomes `Reshape(x @ W + b.flatten())`, the MatMul -> Add -> Reshape -> Transpose path the Attention
  fusion follows back from each of Q, K and V.
- **residual**: `LayerNormalization(x + sublayer(x))` (Keras' order) becomes `sublayer(x) + x` (PyTorch's,
  `hidden_states + input_tensor`): the Attention fusion follows the first Add input that is an Add back to
  the attention output, and picks the residual otherwise.
- **gelu**: `(0.5 * x) * (1 + erf(x * 0.7071))` (exact GELU, as tf2onnx plus our Erfc handler write it)
  is reordered to `x * ((1 + erf(x * 0.7071)) * 0.5)`, the order the optimizer's GELU fusion matches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optismith.builders.onnx_graph import GraphView

_SQRT_HALF = 0.7071067811865476


def canonicalize(model: Any) -> dict[str, int]:
    """Apply every rewrite to `model` (an onnx.ModelProto, in place); how many places each one changed."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
             if v.type.tensor_type.HasField("shape")}
    view = GraphView(model)
    counts = {"einsum": rewrite_einsums(view), "bias": rewrite_split_biases(view),
              "scale": rewrite_attention_scales(view), "layernorm": rewrite_layer_norms(view, ranks)}
    counts["residual"] = rewrite_residual_order(view)  # needs the LayerNormalization nodes
    counts["gelu"] = rewrite_gelus(view)
    view.drop_unused()
    return counts


def _pairs(node: Any) -> list[tuple[str, str]]:
    """A commutative binary node's inputs in both orders."""
    a, b = node.input
    return [(a, b), (b, a)]


def _consumer(view: GraphView, name: str, op_type: str) -> Any:
    found = [n for n in view.consumers.get(name, []) if n.op_type == op_type]
    return found[0] if len(found) == 1 else None


# --- einsum --------------------------------------------------------------------------------------


def einsum_as_matmul(equation: str) -> tuple[list[int], list[int], list[int] | None] | None:
    """(perm of A, perm of B, perm of the MatMul's result or None) computing `equation` as
    Transpose(A) @ Transpose(B), or None when the equation is not one batched matrix product."""
    if "..." in equation or "->" not in equation:
        return None
    operands, out = equation.replace(" ", "").split("->")
    if operands.count(",") != 1:
        return None
    a, b = operands.split(",")
    if any(len(set(s)) != len(s) for s in (a, b, out)) or not set(out) <= set(a) | set(b):
        return None
    batch = [c for c in a if c in b and c in out]
    contracted = [c for c in a if c in b and c not in out]
    left = [c for c in a if c not in b]
    right = [c for c in b if c not in a]
    if len(contracted) != 1 or len(left) != 1 or len(right) != 1 or set(left + right) - set(out):
        return None
    perm_a = [a.index(c) for c in batch + left + contracted]
    perm_b = [b.index(c) for c in batch + contracted + right]
    result = batch + left + right
    perm_out = [result.index(c) for c in out]
    return perm_a, perm_b, None if perm_out == sorted(perm_out) else perm_out


def rewrite_einsums(view: GraphView) -> int:
    from onnx import helper

    changed = 0
    for node in [n for n in view.graph.node if n.op_type == "Einsum" and len(n.input) == 2]:
        equation = next((a.s.decode() for a in node.attribute if a.name == "equation"), "")
        plan = einsum_as_matmul(equation)
        if plan is None:
            continue
        perm_a, perm_b, perm_out = plan
        added, operands = [], []
        for name, perm in zip(node.input, (perm_a, perm_b), strict=True):
            if perm == sorted(perm):
                operands.append(name)
                continue
            moved = view.unique(f"{node.name}/transpose")
            added.append(helper.make_node("Transpose", [name], [moved], name=moved, perm=perm))
            operands.append(moved)
        product = view.unique(f"{node.name}/matmul") if perm_out else node.output[0]
        added.append(helper.make_node("MatMul", operands, [product], name=f"{node.name}/matmul"))
        if perm_out:
            added.append(helper.make_node("Transpose", [product], [node.output[0]], name=f"{node.name}/out",
                                          perm=perm_out))
        view.replace([node], added)
        changed += 1
    return changed


# --- bias ----------------------------------------------------------------------------------------


def rewrite_split_biases(view: GraphView) -> int:
    from onnx import helper

    changed = 0
    for add in [n for n in view.graph.node if n.op_type == "Add"]:
        for value, bias_name in _pairs(add):
            reshape = view.producer.get(value)
            bias = view.constant(bias_name)
            matmul = None if reshape is None or reshape.op_type != "Reshape" else view.parent(reshape, 0, "MatMul")
            shape = None if reshape is None or len(reshape.input) < 2 else view.constant(reshape.input[1])
            weight = None if matmul is None else view.constant(matmul.input[1])
            if bias is None or matmul is None or shape is None or weight is None or weight.ndim != 2 or \
                    bias.ndim != 2 or not view.only_use(value) or not view.only_use(matmul.output[0]):
                continue
            # The Reshape must split only the last dim (features = heads * size) into the bias's two dims.
            if reshape is None or len(shape) < 3 or list(shape[-2:]) != list(bias.shape) or \
                    bias.size != weight.shape[1]:
                continue
            flat = view.add_constant(f"{add.name}/bias", bias.reshape(-1))
            biased = view.unique(f"{add.name}/biased")
            view.replace([reshape, add], [
                helper.make_node("Add", [matmul.output[0], flat], [biased], name=biased),
                helper.make_node("Reshape", [biased, reshape.input[1]], [add.output[0]], name=reshape.name),
            ])
            changed += 1
            break
    return changed


def rewrite_attention_scales(view: GraphView) -> int:
    from onnx import helper

    changed = 0
    for softmax in [n for n in view.graph.node if n.op_type == "Softmax"]:
        mul = view.parent(softmax, 0, "Mul")
        if mul is None or not view.only_use(mul.output[0]):
            continue
        for scores, factor in _pairs(mul):
            c = view.scalar(factor)
            if c is None or c <= 0 or view.producer.get(scores) is None or \
                    view.producer[scores].op_type != "MatMul":
                continue
            value = view.constant(factor)
            divisor = view.add_constant(f"{mul.name}/divisor", (1 / value).astype(value.dtype))  # type: ignore[operator,union-attr]
            view.replace([mul], [helper.make_node("Div", [scores, divisor], [mul.output[0]], name=mul.name)])
            changed += 1
            break
    return changed


# --- layernorm -----------------------------------------------------------------------------------


def _reduce_axes(view: GraphView, node: Any) -> list[int] | None:
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1:
        value = view.constant(node.input[1])
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    return axes if keepdims == 1 else None


def _last_axis_mean(view: GraphView, node: Any, x: str, ranks: dict[str, int]) -> bool:
    axes, rank = _reduce_axes(view, node), ranks.get(x)
    return node.input[0] == x and rank is not None and axes is not None and len(axes) == 1 and \
        axes[0] % rank == rank - 1


def _vector(value: np.ndarray | None) -> np.ndarray | None:
    """A per-feature constant ([..., 1, D]) as the [D] vector LayerNormalization takes, else None."""
    if value is None or value.ndim == 0 or any(d != 1 for d in value.shape[:-1]):
        return None
    return value.reshape(-1)


def _match_layer_norm(view: GraphView, mean: Any, ranks: dict[str, int]) -> tuple[list[Any], dict[str, Any]] | None:
    x = mean.input[0]
    if not _last_axis_mean(view, mean, x, ranks):
        return None
    sub, neg = _consumer(view, mean.output[0], "Sub"), _consumer(view, mean.output[0], "Neg")
    if sub is None or neg is None or list(sub.input) != [x, mean.output[0]]:
        return None
    square = _consumer(view, sub.output[0], "Mul")
    if square is None or list(square.input) != [sub.output[0]] * 2:
        return None
    var = _consumer(view, square.output[0], "ReduceMean")
    if var is None or not _last_axis_mean(view, var, square.output[0], ranks):
        return None
    add_eps = _consumer(view, var.output[0], "Add")
    eps = None if add_eps is None else view.scalar(next(i for i in add_eps.input if i != var.output[0]))
    sqrt = None if add_eps is None else _consumer(view, add_eps.output[0], "Sqrt")
    recip = None if sqrt is None else _consumer(view, sqrt.output[0], "Reciprocal")
    scale = None if recip is None else _consumer(view, recip.output[0], "Mul")
    if eps is None or recip is None or scale is None:
        return None
    gamma = next((_vector(view.constant(g)) for r, g in _pairs(scale) if r == recip.output[0]), None)
    scaled_mean = _consumer(view, neg.output[0], "Mul")
    uses = view.consumers.get(scale.output[0], [])  # s scales both x and -mean
    scaled_x = next((n for n in uses if n.op_type == "Mul" and x in n.input), None)
    if gamma is None or scaled_mean is None or scaled_x is None or len(uses) != 2 or \
            scale.output[0] not in scaled_mean.input:
        return None
    shift = _consumer(view, scaled_mean.output[0], "Add")
    if shift is None:
        return None
    beta = next((_vector(view.constant(b)) for s, b in _pairs(shift) if s == scaled_mean.output[0]), None)
    total = _consumer(view, shift.output[0], "Add")
    if beta is None or total is None or beta.shape != gamma.shape or \
            sorted(total.input) != sorted([scaled_x.output[0], shift.output[0]]):
        return None
    nodes = [mean, sub, square, var, add_eps, sqrt, recip, scale, neg, scaled_mean, shift, scaled_x, total]
    if any(not view.only_use(n.output[0]) for n in nodes[1:-1] if n is not scale) or \
            len(view.consumers.get(mean.output[0], [])) != 2:
        return None
    return nodes, {"x": x, "gamma": gamma, "beta": beta, "eps": eps, "y": total.output[0]}


def rewrite_layer_norms(view: GraphView, ranks: dict[str, int]) -> int:
    from onnx import helper

    if view.opset < 17:  # LayerNormalization is an ONNX op from opset 17
        return 0
    changed = 0
    for mean in [n for n in view.graph.node if n.op_type == "ReduceMean"]:
        if mean.output[0] not in view.producer:  # removed by an earlier match
            continue
        found = _match_layer_norm(view, mean, ranks)
        if found is None:
            continue
        nodes, parts = found
        name = view.unique(mean.name.rsplit("/", 2)[0] or "layer_norm")
        gamma = view.add_constant(f"{name}/gamma", parts["gamma"])
        beta = view.add_constant(f"{name}/beta", parts["beta"].astype(parts["gamma"].dtype))
        norm = helper.make_node("LayerNormalization", [parts["x"], gamma, beta], [parts["y"]], name=name,
                                axis=-1, epsilon=parts["eps"])
        view.replace(nodes, [norm])
        changed += 1
    return changed


def _is_dense(view: GraphView, name: str) -> bool:
    """`name` is a dense layer's output: MatMul by a constant, plus a constant bias."""
    add = view.producer.get(name)
    if add is None or add.op_type != "Add":
        return False
    return any(view.constant(b) is not None and view.producer.get(m) is not None and
               view.producer[m].op_type == "MatMul" and view.constant(view.producer[m].input[1]) is not None
               for m, b in _pairs(add))


def rewrite_residual_order(view: GraphView) -> int:
    from onnx import helper

    changed = 0
    for norm in [n for n in view.graph.node if n.op_type == "LayerNormalization"]:
        residual = view.parent(norm, 0, "Add")
        if residual is None or len(residual.input) != 2:
            continue
        first, second = residual.input
        if _is_dense(view, second) and not _is_dense(view, first):
            swapped = helper.make_node("Add", [second, first], list(residual.output), name=residual.name)
            view.replace([residual], [swapped])
            changed += 1
    return changed


# --- gelu ----------------------------------------------------------------------------------------


def rewrite_gelus(view: GraphView) -> int:
    from onnx import helper

    changed = 0
    for erf in [n for n in view.graph.node if n.op_type == "Erf"]:
        inner = view.parent(erf, 0, "Mul")
        x = None if inner is None else next(
            (v for v, c in _pairs(inner) if abs((view.scalar(c) or 0) - _SQRT_HALF) < 1e-3), None)
        add = _consumer(view, erf.output[0], "Add")
        if x is None or add is None or not view.only_use(erf.output[0]) or \
                next((view.scalar(c) for e, c in _pairs(add) if e == erf.output[0]), None) != 1.0:
            continue
        outer = _consumer(view, add.output[0], "Mul")
        half = None if outer is None else next((view.producer.get(h) for a, h in _pairs(outer)
                                                if a == add.output[0]), None)
        if half is None or half.op_type != "Mul" or not view.only_use(add.output[0]) or \
                not view.only_use(half.output[0]) or \
                next((view.scalar(c) for v, c in _pairs(half) if v == x), None) != 0.5:
            continue
        halved = view.unique(f"{erf.name}/half")
        half_const = view.add_constant(f"{erf.name}/0.5", np.array(0.5, dtype=view.constant(next(
            c for v, c in _pairs(half) if v == x)).dtype))  # type: ignore[union-attr]
        view.replace([half, outer], [
            helper.make_node("Mul", [add.output[0], half_const], [halved], name=halved),
            helper.make_node("Mul", [x, halved], [outer.output[0]], name=outer.name),
        ])
        changed += 1
    return changed
