"""The canonical rewrites for the transformer fusions, on hand-built ONNX graphs (no TensorFlow): each one
applies where its pattern is, leaves a near-miss alone, and keeps the outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from optismith.builders.onnx_canonical import canonicalize, einsum_as_matmul

RNG = np.random.default_rng(0)


def model(nodes: list[Any], inputs: dict[str, list[int]], output: str, constants: dict[str, np.ndarray]) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in constants.items()],
    )
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    built.ir_version = 8
    return built


def run(built: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def rewritten(built: Any, feeds: dict[str, np.ndarray]) -> tuple[dict[str, int], list[str]]:
    """canonicalize's counts and the op types after it, asserting the outputs did not move."""
    before = run(built, feeds)
    counts = canonicalize(built)
    np.testing.assert_allclose(run(built, feeds), before, rtol=1e-5, atol=1e-5)
    return counts, [n.op_type for n in built.graph.node]


def test_einsum_plans() -> None:
    assert einsum_as_matmul("btnh,bsnh->bnts") == ([0, 2, 1, 3], [0, 2, 3, 1], None)
    assert einsum_as_matmul("bnts,bsnh->btnh") == ([0, 1, 2, 3], [0, 2, 1, 3], [0, 2, 1, 3])
    assert einsum_as_matmul("abc,cde->abde") is None  # two free indices on one side
    assert einsum_as_matmul("ii->i") is None and einsum_as_matmul("ij,jk,kl->il") is None


@pytest.mark.parametrize(("equation", "applies"), [("btnh,bsnh->bnts", True), ("abc,cde->abde", False)])
def test_einsum_rewrite(equation: str, applies: bool) -> None:
    from onnx import helper

    a_spec, b_spec = equation.split("->", maxsplit=1)[0].split(",")
    sizes = dict(zip("btnhsacde", [2, 3, 2, 4, 5, 2, 3, 4, 2], strict=True))
    a = RNG.normal(size=[sizes[c] for c in a_spec]).astype(np.float32)
    b = RNG.normal(size=[sizes[c] for c in b_spec]).astype(np.float32)
    built = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)],
                  {"a": list(a.shape), "b": list(b.shape)}, "y", {})
    counts, ops = rewritten(built, {"a": a, "b": b})
    assert counts["einsum"] == int(applies)
    assert ("Einsum" not in ops and "MatMul" in ops) if applies else ops == ["Einsum"]


def tf_layer_norm(eps_is_constant: bool = True) -> tuple[Any, dict[str, np.ndarray]]:
    """TensorFlow's LayerNormalization as tf2onnx writes it: x * s + (beta - mean * s)."""
    from onnx import helper

    n = helper.make_node
    nodes = [
        n("ReduceMean", ["x"], ["mean"], axes=[2], keepdims=1), n("Neg", ["mean"], ["neg"]),
        n("Sub", ["x", "mean"], ["d"]), n("Mul", ["d", "d"], ["d2"]),
        n("ReduceMean", ["d2"], ["var"], axes=[2], keepdims=1),
        n("Add", ["var", "eps" if eps_is_constant else "e"], ["ve"]), n("Sqrt", ["ve"], ["sd"]),
        n("Reciprocal", ["sd"], ["inv"]), n("Mul", ["inv", "gamma"], ["s"]), n("Mul", ["x", "s"], ["xs"]),
        n("Mul", ["neg", "s"], ["ms"]), n("Add", ["ms", "beta"], ["shift"]), n("Add", ["xs", "shift"], ["y"]),
    ]
    inputs = {"x": [2, 3, 8]} | ({} if eps_is_constant else {"e": []})
    constants = {"gamma": RNG.normal(size=(1, 1, 8)), "beta": RNG.normal(size=(1, 1, 8))}
    if eps_is_constant:
        constants["eps"] = np.array(1e-6)
    feeds = {"x": RNG.normal(size=(2, 3, 8)).astype(np.float32)}
    if not eps_is_constant:
        feeds["e"] = np.array(1e-6, dtype=np.float32)
    return model(nodes, inputs, "y", constants), feeds


def test_tf_layer_norm_becomes_layer_normalization() -> None:
    built, feeds = tf_layer_norm()
    counts, ops = rewritten(built, feeds)
    assert counts["layernorm"] == 1 and ops == ["LayerNormalization"]


def test_layer_norm_with_a_computed_epsilon_is_left_alone() -> None:
    built, feeds = tf_layer_norm(eps_is_constant=False)
    counts, ops = rewritten(built, feeds)
    assert counts["layernorm"] == 0 and "LayerNormalization" not in ops and len(ops) == 13


@pytest.mark.parametrize(("half", "applies"), [(0.5, True), (0.4, False)])
def test_gelu_reorder(half: float, applies: bool) -> None:
    from onnx import helper

    n = helper.make_node
    nodes = [n("Mul", ["h", "x"], ["hx"]), n("Mul", ["x", "c"], ["xc"]), n("Erf", ["xc"], ["e"]),
             n("Add", ["one", "e"], ["a"]), n("Mul", ["hx", "a"], ["y"])]
    built = model(nodes, {"x": [4, 8]}, "y", {"h": np.array(half), "c": np.array(0.7071067690849304),
                                              "one": np.array(1.0)})
    counts, _ = rewritten(built, {"x": RNG.normal(size=(4, 8)).astype(np.float32)})
    assert counts["gelu"] == int(applies)
    producer_of_y = next(node for node in built.graph.node if node.output[0] == "y")
    assert (producer_of_y.input[0] == "x") is applies  # x * ((1 + erf) * 0.5): the fusable order


def attention_block(scale_by_mul: bool = True) -> tuple[Any, dict[str, np.ndarray]]:
    """Keras MHA as tf2onnx writes it once the Einsums are MatMuls: split-head biases after the Reshape,
    the scale as Mul, the residual Add with x first."""
    from onnx import helper

    n = helper.make_node
    nodes = []
    for p in "qkv":
        nodes += [n("MatMul", ["x", f"w{p}"], [f"{p}m"]), n("Reshape", [f"{p}m", "split"], [f"{p}r"]),
                  n("Add", [f"{p}r", f"b{p}"], [p])]
    nodes += [n("Transpose", ["q"], ["qt"], perm=[0, 2, 1, 3]), n("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
              n("MatMul", ["qt", "kt"], ["scores"]),
              n("Mul" if scale_by_mul else "Div", ["scores", "scale"], ["scaled"]),
              n("Softmax", ["scaled"], ["p"]), n("Transpose", ["v"], ["vt"], perm=[0, 2, 1, 3]),
              n("MatMul", ["p", "vt"], ["ctx"]), n("Transpose", ["ctx"], ["ctxt"], perm=[0, 2, 1, 3]),
              n("Reshape", ["ctxt", "merge"], ["ctxr"]), n("MatMul", ["ctxr", "wo"], ["om"]),
              n("Add", ["om", "bo"], ["o"]), n("Add", ["x", "o"], ["res"]),
              n("LayerNormalization", ["res", "g", "beta"], ["y"], axis=-1, epsilon=1e-6)]
    d, heads = 8, 2
    constants = {f"w{p}": RNG.normal(size=(d, d)) for p in "qkvo"} | \
        {f"b{p}": RNG.normal(size=(heads, d // heads)) for p in "qkv"} | \
        {"bo": RNG.normal(size=d), "g": RNG.normal(size=d), "beta": RNG.normal(size=d),
         "scale": np.array(0.5 if scale_by_mul else 2.0)}
    built = model(nodes, {"x": [2, 4, d]}, "y", constants)
    import onnx

    for name, shape in (("split", [-1, 4, heads, d // heads]), ("merge", [-1, 4, d])):
        built.graph.initializer.append(onnx.numpy_helper.from_array(np.array(shape, dtype=np.int64), name))
    return built, {"x": RNG.normal(size=(2, 4, d)).astype(np.float32)}


def test_attention_block_rewrites_so_the_optimizer_fuses_attention(tmp_path: Any) -> None:
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    built, feeds = attention_block()
    counts, _ = rewritten(built, feeds)
    assert (counts["bias"], counts["scale"], counts["residual"]) == (3, 1, 1)
    onnx.save(built, str(tmp_path / "m.onnx"))
    optimized = optimize_model(str(tmp_path / "m.onnx"), model_type="bert", opt_level=0)
    assert optimized.get_fused_operator_statistics()["Attention"] == 1


def test_attention_block_already_in_pytorch_form_needs_no_scale_rewrite() -> None:
    built, feeds = attention_block(scale_by_mul=False)
    counts, _ = rewritten(built, feeds)
    assert counts["scale"] == 0 and counts["bias"] == 3
