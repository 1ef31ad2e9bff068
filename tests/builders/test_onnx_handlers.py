"""tf2onnx's missing Erfc handler and the unconverted-op check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.builders.onnx_handlers import UnconvertedOps, unconverted_ops


def graph_with(op_type: str, domain: str = "") -> object:
    from onnx import TensorProto, helper

    node = helper.make_node(op_type, ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    return helper.make_model(graph)


def test_a_tensorflow_op_left_in_the_graph_is_named() -> None:
    left = unconverted_ops(graph_with("Erfc"))
    assert left == {"Erfc": 1}
    assert "Erfc (x1)" in str(UnconvertedOps(left, "tf2onnx 1.17"))


def test_onnx_and_custom_domain_ops_are_not_reported() -> None:
    assert unconverted_ops(graph_with("Erf")) == {}
    assert unconverted_ops(graph_with("Gelu", domain="com.microsoft")) == {}


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("negated", [False, True])
def test_erfc_converts_to_erf(tmp_path: Path, negated: bool) -> None:
    import onnx
    import onnxruntime as ort

    from optismith.builders.onnx import frozen_graph_to_onnx
    from optismith.frameworks import import_tensorflow
    from optismith.graphio import GraphIO, TensorIO

    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 5], name="x")
        tf.math.erfc(-x * 0.7071 if negated else x, name="y")
    io = GraphIO(inputs=(TensorIO(name="x", tensor="x:0", dtype="float32", shape=(None, 5)),),
                 outputs=(TensorIO(name="y", tensor="y:0", dtype="float32", shape=(None, 5)),))
    path = tmp_path / "erfc.onnx"
    frozen_graph_to_onnx(graph.as_graph_def().SerializeToString(), io, path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Erf" in ops and "Erfc" not in ops
    assert ("Add" in ops) is negated  # erfc(-v) = 1 + erf(v), the form ORT's GELU fusion matches
    values = np.linspace(-3, 3, 10, dtype=np.float32).reshape(2, 5)
    (converted,) = ort.InferenceSession(str(path)).run(None, {"x": values})
    with tf.compat.v1.Session(graph=graph) as session:
        expected = session.run("y:0", {"x:0": values})
    np.testing.assert_allclose(converted, expected, atol=1e-6)
