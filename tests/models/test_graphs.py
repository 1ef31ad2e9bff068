"""Graph analysis, freezing and offline optimization on small real graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optismith.graphio import GraphIO, TensorIO
from optismith.models.analysis import flops_per_sample, op_histogram, saved_model_op_histogram
from optismith.models.freezing import FrozenGraph, freeze_saved_model, read_graph, write_graph
from optismith.models.graphwalk import reachable
from optismith.models.grappler import fold_for_inference, grappler_name, op_counts, run_grappler

pytestmark = pytest.mark.tf


def _run(graph_def: Any, io: GraphIO, feeds: list[np.ndarray]) -> list[np.ndarray]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        feed_dict = {t.tensor: f for t, f in zip(io.inputs, feeds, strict=True)}
        return list(session.run([t.tensor for t in io.outputs], feed_dict))


def _io(inputs: list[tuple[str, list[int | None]]], outputs: list[str]) -> GraphIO:
    return GraphIO(
        inputs=tuple(TensorIO(name, f"{name}:0", "float32", tuple(shape)) for name, shape in inputs),
        outputs=tuple(TensorIO(name, f"{name}:0", "float32", ()) for name in outputs),
    )


@pytest.fixture(scope="module")
def digits_frozen(digits_dir: Path) -> FrozenGraph:
    return freeze_saved_model(digits_dir / "model", "serving_default")


def test_digits_parameters_and_flops(digits_dir: Path, digits_frozen: FrozenGraph) -> None:
    import keras

    model = keras.saving.load_model(digits_dir / "model.keras", compile=False)
    assert digits_frozen.parameter_count == model.count_params()
    macs = (8 * 8 * 32 * 3 * 3 * 1) + (8 * 8 * 64 * 3 * 3 * 32) + (4 * 4 * 64 * 3 * 3 * 64) + 64 * 64 + 64 * 10
    assert flops_per_sample(digits_frozen.graph_def, digits_frozen.io) == 2 * macs


def test_flop_rules_for_depthwise_transposed_and_batched_products() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 4], name="x")
        depthwise = tf.nn.depthwise_conv2d(x, tf.ones([3, 3, 4, 2]), [1, 1, 1, 1], "SAME")  # 6x6x8 out
        up = tf.nn.conv2d_transpose(depthwise, tf.ones([2, 2, 5, 8]), [1, 12, 12, 5], 2)  # in 6x6x8, out 5 ch
        flat = tf.reshape(up, [-1, 12 * 12 * 5])
        dense = tf.matmul(flat, tf.ones([720, 3]))
        pairs = tf.matmul(tf.reshape(dense, [-1, 3, 1]), tf.ones([1, 1, 4]))  # BatchMatMulV2: [1,3,4], k=1
        tf.identity(pairs, name="y")
    expected = 2 * (6 * 6 * 8 * 9) + 2 * (6 * 6 * 8 * 2 * 2 * 5) + 2 * 720 * 3 + 2 * 3 * 4 * 1
    assert flops_per_sample(graph.as_graph_def(), _io([("x", [None, 6, 6, 4])], ["y"])) == expected


def test_flops_are_unknown_when_spatial_dimensions_are_dynamic() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1], name="x")
        tf.identity(tf.nn.conv2d(x, tf.ones([3, 3, 1, 2]), 1, "SAME"), name="y")
    assert flops_per_sample(graph.as_graph_def(), _io([("x", [None, None, None, 1])], ["y"])) is None


def test_histogram_counts_function_bodies_not_call_wrappers(digits_dir: Path) -> None:
    histogram = saved_model_op_histogram(digits_dir / "model", "serving_default")
    assert histogram["Conv2D"] == 3 and histogram["MatMul"] == 2
    assert "StatefulPartitionedCall" not in histogram and "PartitionedCall" not in histogram
    assert "RestoreV2" not in histogram, "the saver is not part of the serving graph"


def test_reachable_ignores_nodes_the_fetches_do_not_need() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        tf.identity(x + 1.0, name="used")
        tf.identity(x * 3.0, name="unused")
    names = {r.node.name for r in reachable(graph.as_graph_def(), ["used:0"])}
    assert "used" in names and "x" in names and "unused" not in names
    assert op_histogram(graph.as_graph_def(), ["used"])["AddV2"] == 1


def test_freeze_keeps_signature_names_with_several_inputs_and_outputs(tmp_path: Path) -> None:
    """Keys sort differently from creation order and shapes differ, so a mix-up cannot go unnoticed."""
    import tensorflow as tf

    class TwoByTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="b_in"),
                tf.TensorSpec([None, 2], tf.float32, name="a_in"),
            ]
        )
        def serve(self, b_in: Any, a_in: Any) -> dict[str, Any]:
            return {"z_product": tf.matmul(a_in, self.w) + b_in, "a_sum": tf.reduce_sum(a_in, axis=1)}

    module = TwoByTwo()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    frozen = freeze_saved_model(tmp_path / "model", "serving_default")
    assert [t.name for t in frozen.io.inputs] == ["a_in", "b_in"]
    assert [t.name for t in frozen.io.outputs] == ["a_sum", "z_product"]
    assert frozen.io.inputs[0].shape == (None, 2) and frozen.io.outputs[1].shape == (None, 3)
    assert frozen.parameter_count == 6

    rng = np.random.default_rng(0)
    a, b = rng.random((4, 2), dtype=np.float32), rng.random((4, 3), dtype=np.float32)
    a_sum, product = _run(frozen.graph_def, frozen.io, [a, b])
    np.testing.assert_allclose(a_sum, a.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(product, a @ module.w.numpy() + b, rtol=1e-6)

    path = write_graph(frozen.graph_def, frozen.io, tmp_path / "frozen", "frozen.pb")
    graph_def, io = read_graph(path)
    assert io == frozen.io and len(graph_def.node) == len(frozen.graph_def.node)


def test_remapper_pass_fuses_and_its_spec_name_is_translated(digits_frozen: FrozenGraph) -> None:
    assert grappler_name("remapper") == "remap" and grappler_name("constfold") == "constfold"
    fused = op_counts(run_grappler(digits_frozen.graph_def, digits_frozen.io, ["remapper"]))
    assert fused["_FusedConv2D"] == 3 and fused["_FusedMatMul"] == 2 and "Conv2D" not in fused
    folded_only = op_counts(run_grappler(digits_frozen.graph_def, digits_frozen.io, ["constfold"]))
    assert "_FusedConv2D" not in folded_only and folded_only["Conv2D"] == 3


def test_grappler_keeps_the_outputs_and_the_results(digits_frozen: FrozenGraph) -> None:
    from optismith.spec import DEFAULT_PASSES

    optimized = run_grappler(digits_frozen.graph_def, digits_frozen.io, list(DEFAULT_PASSES))
    assert len(optimized.node) < len(digits_frozen.graph_def.node) / 2
    assert all(node.device == "" for node in optimized.node)
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(
        _run(optimized, digits_frozen.io, [x])[0], _run(digits_frozen.graph_def, digits_frozen.io, [x])[0], atol=1e-6
    )


def _conv_batch_norm_graph() -> Any:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 6, 6, 2], name="x")
        conv = tf.nn.conv2d(x, tf.constant(rng.normal(size=(3, 3, 2, 4)).astype(np.float32)), 1, "SAME")
        norm, _, _ = tf.compat.v1.nn.fused_batch_norm(
            conv,
            *(
                tf.constant(v.astype(np.float32))
                for v in (rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4))
            ),
            is_training=False,
        )
        tf.nn.relu(norm, name="y")
    return graph.as_graph_def()


def test_fold_for_inference_folds_fused_batch_norm() -> None:
    graph_def = _conv_batch_norm_graph()
    io = _io([("x", [None, 6, 6, 2])], ["y"])
    result = fold_for_inference(graph_def, io)
    assert result.status == "applied" and result.batch_norms_folded == 1
    assert "FusedBatchNormV3" in op_counts(graph_def) and "FusedBatchNormV3" not in op_counts(result.graph_def)
    assert result.summary()["ops_after"] < result.summary()["ops_before"]
    x = np.random.default_rng(2).random((3, 6, 6, 2), dtype=np.float32)
    np.testing.assert_allclose(_run(result.graph_def, io, [x])[0], _run(graph_def, io, [x])[0], atol=1e-5)


def test_fold_for_inference_is_an_honest_no_op_on_keras_batch_norm(digits_frozen: FrozenGraph) -> None:
    result = fold_for_inference(digits_frozen.graph_def, digits_frozen.io)
    assert result.status == "no-op" and result.batch_norms_folded == 0
    assert result.graph_def is digits_frozen.graph_def
    assert "no FusedBatchNorm" in result.reason
