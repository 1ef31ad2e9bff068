"""The scan, graph by graph: every op of every graph and function is checked (reachable or not), saver and asset
ops only where loaders legitimately use them, attribute gates, remote devices, and the error that names the
ops, where they sit and how to allow them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optismith.errors import UnsafeModelError
from optismith.models.policy import enforce, scan_graph_def, scan_saved_model
from optismith.models.policy.scan import ScanReport
from tests.security import hostile

pytestmark = pytest.mark.tf


def ops_of(report: ScanReport) -> list[str]:
    return sorted({finding.op for finding in report.findings})


def graph_with(op: str, attrs: dict[str, Any] | None = None, *, in_function: bool = False) -> Any:
    """A GraphDef holding one node of `op`: in the main graph, or in a library function nothing calls."""
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    if in_function:
        function = graph_def.library.function.add()
        function.signature.name = "innocent_helper"
        node = function.node_def.add()
    else:
        node = graph_def.node.add()
    node.name, node.op = "n", op
    for key, value in (attrs or {}).items():
        if isinstance(value, bytes):
            node.attr[key].s = value
        elif isinstance(value, bool):
            node.attr[key].b = value
        else:
            node.attr[key].type = value
    return graph_def


MISSED_BY_THE_DENY_LIST = [
    "MatchingFilesDataset", "DataServiceDataset", "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2",
    "DistributedSave", "GenerateVocabRemapping", "RecordInput", "Skipgram", "Abort", "DatasetFromGraph",
    "MlirPassthroughOp", "XlaCallModule", "ImmutableConst", "SnapshotDatasetV2", "RpcClient",
    "FileSystemSetConfiguration", "DumpTensor", "_HostSend", "NoSuchCustomOp",
]


@pytest.mark.parametrize("in_function", [False, True], ids=["main graph", "uncalled function"])
@pytest.mark.parametrize("op", MISSED_BY_THE_DENY_LIST)
def test_ops_the_deny_list_missed_are_refused_wherever_they_sit(op: str, in_function: bool) -> None:
    report = scan_graph_def(graph_with(op, in_function=in_function))
    assert ops_of(report) == [op]
    assert ("fn:innocent_helper" in report.findings[0].where) == in_function


@pytest.mark.parametrize(("op", "attrs"), [
    ("FixedUnigramCandidateSampler", {"vocab_file": b"/etc/hostname"}),
    ("PrintV2", {"output_stream": b"file:///tmp/leak"}),
    ("DecodeProtoV2", {"descriptor_source": b"/etc/passwd"}),
    ("Empty", {"init": False}),
    ("Const", {"dtype": 20}),
    ("ParseTensor", {"out_type": 21}),
])
def test_attribute_gates_refuse_files_descriptors_and_raw_memory(op: str, attrs: dict[str, Any]) -> None:
    assert ops_of(scan_graph_def(graph_with(op, attrs))) == [op]


@pytest.mark.parametrize(("op", "attrs"), [
    ("FixedUnigramCandidateSampler", {"vocab_file": b""}),
    ("PrintV2", {"output_stream": b"stderr"}),
    ("DecodeProtoV2", {"descriptor_source": b"local://"}),
    ("Empty", {"init": True}),
    ("Const", {"dtype": 1}),
    ("ParseTensor", {"out_type": 1}),
])
def test_attribute_gates_pass_the_harmless_settings(op: str, attrs: dict[str, Any]) -> None:
    assert scan_graph_def(graph_with(op, attrs)).findings == []


def test_a_function_attribute_must_name_a_library_function() -> None:
    graph_def = graph_with("PartitionedCall")
    graph_def.node[0].attr["f"].func.name = "ReadFile"
    (finding,) = scan_graph_def(graph_def).findings
    assert "'ReadFile', which the library does not have" in finding.reason and not finding.allowable


def test_a_node_on_a_remote_job_is_refused() -> None:
    graph_def = graph_with("NoOp")
    graph_def.node[0].device = "/job:worker/task:0/device:CPU:0"
    (finding,) = scan_graph_def(graph_def).findings
    assert "remote device" in finding.reason and not finding.allowable


def test_checkpoint_reads_outside_a_saver_are_refused() -> None:
    """RestoreV2 outside any saver_def: it reads whatever checkpoint path it is given."""
    assert ops_of(scan_graph_def(graph_with("RestoreV2"))) == ["RestoreV2"]


def _module_saved_model(dest: Path, target: Path, *, nested: bool) -> Path:
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
            if nested:
                record(x)
            return {"y": x * self.scale}

    module = Leaky()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest


def test_a_tf2_saver_passes_and_a_write_in_a_nested_function_is_found(tmp_path: Path) -> None:
    clean = scan_saved_model(_module_saved_model(tmp_path / "clean", tmp_path / "x", nested=False))
    assert clean.findings == [] and clean.functions_checked >= 3, "the saver's RestoreV2/SaveV2 are its own"
    leaky = scan_saved_model(_module_saved_model(tmp_path / "leaky", tmp_path / "x", nested=True))
    assert ops_of(leaky) == ["WriteFile"]
    assert "/fn:" in leaky.findings[0].where, "the location names the function holding the node"


def test_a_write_in_a_function_no_signature_calls_is_found(tmp_path: Path) -> None:
    report = scan_saved_model(hostile.uncalled_function_savedmodel(tmp_path / "m", str(tmp_path / "x")))
    assert ops_of(report) == ["WriteFile"]


def test_the_init_op_and_the_restore_op_are_scanned(tmp_path: Path) -> None:
    """TF Serving runs the main_op and saver_def.restore_op_name while it loads the model."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        y = tf.identity(x * 2.0, name="y")
        main_op = tf.io.write_file(str(tmp_path / "planted"), "owned")
        hostile.builder_save(tmp_path / "init", session, {"x": x}, {"y": y}, main_op=main_op)
    assert ops_of(scan_saved_model(tmp_path / "init")) == ["WriteFile"]
    restore = scan_saved_model(hostile.restore_op_savedmodel(tmp_path / "restore", str(tmp_path / "planted")))
    reasons = [f.reason for f in restore.findings if f.op == "WriteFile"]
    assert any("saver's restore subgraph" in reason for reason in reasons), reasons


@pytest.mark.parametrize("filename", ["/etc/hostname", "../../../../etc/hostname", "vocab/../../x", ""])
def test_asset_files_outside_assets_are_refused(tmp_path: Path, filename: str) -> None:
    report = scan_saved_model(hostile.asset_escape_savedmodel(tmp_path / "m", filename))
    assert {f.op for f in report.findings} == {"AssetFileDef", "InitializeTableFromTextFileV2"}
    assert not any(f.allowable for f in report.findings if f.op == "AssetFileDef")


def test_an_asset_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    model = hostile.asset_escape_savedmodel(tmp_path / "m", "vocab.txt")
    (model / "assets" / "vocab.txt").symlink_to("/etc/hostname")
    reasons = [f.reason for f in scan_saved_model(model).findings]
    assert any("symbolic link" in reason for reason in reasons), reasons


def test_a_legitimate_tf1_asset_table_passes(tmp_path: Path) -> None:
    model = hostile.asset_escape_savedmodel(tmp_path / "m", "vocab.txt")
    (model / "assets" / "vocab.txt").write_text("a\nb\n")
    assert scan_saved_model(model).findings == []


def test_a_table_read_from_a_host_file_is_refused(tmp_path: Path) -> None:
    report = scan_saved_model(hostile.table_leak_savedmodel(tmp_path / "m", "/proc/self/environ"))
    (finding,) = report.findings
    assert finding.op == "InitializeTableFromTextFileV2" and "vocab_path" in finding.reason


def test_the_error_names_the_ops_where_they_sit_and_the_fix() -> None:
    report = ScanReport("m")
    for op in ("WriteFile", "ReadFile", "DatasetFromGraph"):
        report.findings += scan_graph_def(graph_with(op, in_function=op == "WriteFile"), "graph").findings
    with pytest.raises(UnsafeModelError) as caught:
        enforce(report, [], "s3://models/m")
    error = caught.value
    assert "DatasetFromGraph, ReadFile, WriteFile" in error.what
    assert "WriteFile at graph/fn:innocent_helper/n (files" in error.what
    assert "spec.security.allowOps: [ReadFile, WriteFile]" in error.fix
    assert "DatasetFromGraph cannot be allowed" in error.fix
    assert error.where == "s3://models/m" and error.exit_code == 8
    with pytest.raises(UnsafeModelError) as partly:
        enforce(report, ["WriteFile", "ReadFile"], "m")
    assert "WriteFile" not in partly.value.what and "DatasetFromGraph" in partly.value.what
    with pytest.raises(UnsafeModelError):
        enforce(report, ["WriteFile", "ReadFile", "DatasetFromGraph"], "m")  # embedded programs stay refused
    enforce(scan_graph_def(graph_with("WriteFile")), ["WriteFile"], "m")


def test_a_tf1_builder_export_with_its_stock_saver_passes(tmp_path: Path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.ones([4, 2]), use_resource=True)
        y = tf.identity(tf.matmul(x, w), name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            hostile.builder_save(tmp_path / "m", session, {"x": x}, {"y": y})
    report = scan_saved_model(tmp_path / "m")
    assert report.findings == [] and report.ops_checked > 20
