"""The op scan that refuses models reaching outside themselves (files, Python, debuggers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optismith.errors import ModelSignatureError, UnsafeModelError
from optismith.models.formats import read_saved_model
from optismith.models.security import (
    UNSAFE_OPS,
    check_findings,
    scan_ops,
    scan_saved_model,
    select_meta_graph,
)

pytestmark = pytest.mark.tf


def _leaky_saved_model(dest: Path, target: Path) -> Path:
    """TF2 SavedModel: the serving function writes a file (inside a nested tf.function)."""
    import tensorflow as tf

    @tf.function
    def record(x: Any) -> None:
        tf.io.write_file(str(target), tf.io.serialize_tensor(x))

    class Leaky(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            record(x)
            return {"y": x * self.scale}

    module = Leaky()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leaky")
    return _leaky_saved_model(root / "model", root / "written.bin")


def test_write_file_in_a_nested_function_is_found(leaky: Path) -> None:
    findings = scan_saved_model(leaky, "serving_default")
    assert [op for op, _ in findings] == ["WriteFile"]
    assert "/" in findings[0][1], "the location names the function holding the node"


def test_the_saver_subgraph_is_not_the_serving_graph(leaky: Path) -> None:
    graph_def = select_meta_graph(read_saved_model(leaky)).graph_def
    everything = {op for op, _ in scan_ops(graph_def)}
    assert {"RestoreV2", "SaveV2"} <= everything, "the SavedModel's saver does restore and save"
    assert "RestoreV2" not in {op for op, _ in scan_saved_model(leaky, "serving_default")}


def test_unknown_signature_names_the_available_ones(leaky: Path) -> None:
    with pytest.raises(ModelSignatureError, match=r"no signature 'predict'; it has \['serving_default'\]"):
        scan_saved_model(leaky, "predict")


def test_init_op_is_scanned(tmp_path: Path) -> None:
    """TF Serving runs a SavedModel's main_op when it loads the model, before any request."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        y = tf.identity(x * 2.0, name="y")
        main_op = tf.io.write_file(str(tmp_path / "planted"), "owned")
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "model"))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], {"serving_default": signature}, main_op=main_op)
        builder.save()
    assert [op for op, _ in scan_saved_model(tmp_path / "model", "serving_default")] == ["WriteFile"]


def test_print_is_unsafe_only_when_it_writes_to_a_file() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        to_log = tf.raw_ops.PrintV2(input=tf.strings.as_string(x)[0], output_stream="stderr", name="to_log")
        to_file = tf.raw_ops.PrintV2(input=tf.strings.as_string(x)[1], output_stream="file:///tmp/leak", name="to_file")
        with tf.control_dependencies([to_log, to_file]):
            tf.identity(x, name="y")
    assert scan_ops(graph.as_graph_def(), ["y"]) == [("PrintV2", "to_file")]


def test_py_func_is_unsafe() -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        tf.identity(tf.compat.v1.py_func(lambda v: v, [x], tf.float32), name="y")
    assert [op for op, _ in scan_ops(graph.as_graph_def(), ["y"])] == ["PyFunc"]


def test_refusal_lists_ops_nodes_and_the_fix() -> None:
    findings = [("WriteFile", "f/write"), ("ReadFile", "read")]
    with pytest.raises(UnsafeModelError) as caught:
        check_findings(findings, [], "s3://models/m")
    error = caught.value
    assert "ReadFile, WriteFile" in error.what and "f/write (WriteFile)" in error.what
    assert "spec.security.allowOps: [ReadFile, WriteFile]" in error.fix
    assert error.where == "s3://models/m" and error.exit_code == 8
    with pytest.raises(UnsafeModelError, match="ReadFile") as partly:
        check_findings(findings, ["WriteFile"], "m")
    assert "WriteFile" not in partly.value.what
    check_findings(findings, ["WriteFile", "ReadFile"], "m")


def test_every_listed_op_exists_in_tensorflow() -> None:
    """A misspelt name would never match anything, silently."""
    import tensorflow  # noqa: F401 - registers the ops
    from tensorflow.python.framework import op_def_registry

    unknown = sorted(op for op in UNSAFE_OPS if op_def_registry.get(op) is None)
    assert unknown == []
