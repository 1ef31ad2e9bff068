"""Refusing models that reach outside themselves.

A TensorFlow model is a program: its graph can read and write files, run Python, or dump tensors to
a debugger. None of that belongs in an inference graph, so the graph that serving executes (the
signature's outputs and the SavedModel's init op, with every function they call) is scanned before
the model is loaded or run, and such ops are refused unless `spec.security.allowOps` lists them.
The saver's own RestoreV2/SaveV2 subgraph is not reached from the signature, so legitimate variable
restore does not trip the scan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from optismith.errors import ModelSignatureError, UnsafeModelError
from optismith.models.formats import read_graph_def, read_meta_graph, read_saved_model
from optismith.models.graphwalk import reachable
from optismith.spec import ModelSource

UNSAFE_OPS = frozenset({
    # files
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "LoadAndRemapMatrix",
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "TextLineReader", "TextLineReaderV2",
    "WholeFileReader", "WholeFileReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader",
    # datasets that read or write files (or databases)
    "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "TextLineDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "CacheDataset", "CacheDatasetV2",
    "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
    "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader",
    # summaries (event files, databases)
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "ImportEvent", "WriteSummary",
    "WriteRawProtoSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary",
    "WriteAudioSummary", "WriteGraphSummary",
    # Python
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    # debugger taps (can write to file:// or grpc:// URLs)
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
})


def _to_file(value: bytes) -> bool:
    return value.startswith(b"file://")


def _from_file(value: bytes) -> bool:
    return value not in (b"", b"local://")


# Harmless unless an attribute points them at the file system: PrintV2 to "file://...", proto codecs
# reading descriptors from a file instead of the linked-in pool.
_FILE_ATTRIBUTES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "PrintV2": ("output_stream", _to_file),
    "DecodeProtoV2": ("descriptor_source", _from_file),
    "EncodeProto": ("descriptor_source", _from_file),
}

Finding = tuple[str, str]  # (op, node location)


def _is_unsafe(node: Any) -> bool:
    if node.op in UNSAFE_OPS:
        return True
    if node.op in _FILE_ATTRIBUTES:
        attribute, dangerous = _FILE_ATTRIBUTES[node.op]
        return attribute in node.attr and dangerous(bytes(node.attr[attribute].s))
    return False


def scan_ops(graph_def: Any, fetches: Iterable[str] | None = None) -> list[Finding]:
    """(op, node) for every op that touches files, the host or Python, among the nodes that can run
    when `fetches` are fetched (all nodes when None), including the function library they call."""
    findings = {(reached.node.op, reached.location) for reached in reachable(graph_def, fetches)
                if _is_unsafe(reached.node)}
    return sorted(findings)


def check_findings(findings: Sequence[Finding], allow_ops: Sequence[str], where: str) -> None:
    refused = [(op, node) for op, node in findings if op not in set(allow_ops)]
    if not refused:
        return
    ops = sorted({op for op, _ in refused})
    nodes = ", ".join(f"{node} ({op})" for op, node in refused[:10])
    more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
    raise UnsafeModelError(
        f"the model's serving graph uses ops that reach outside the model: {', '.join(ops)} "
        f"(nodes: {nodes}{more})",
        where=where,
        fix=f"if you trust this model, list the ops in spec.security.allowOps: [{', '.join(ops)}]; "
        "otherwise remove them from the serving function",
    )


def select_meta_graph(saved_model: Any) -> Any:
    """The MetaGraph TF Serving would load: tagged 'serve', else the only one."""
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    return saved_model.meta_graphs[0]


def available_signatures(meta_graph: Any) -> list[str]:
    return sorted(key for key in meta_graph.signature_def if not key.startswith("__"))


def serving_fetches(meta_graph: Any, signature: str, where: str) -> list[str]:
    """Tensor names serving runs: the signature's outputs and the init op(s) run at load."""
    if signature not in meta_graph.signature_def:
        raise ModelSignatureError(
            f"the model has no signature {signature!r}; it has {available_signatures(meta_graph)}",
            where=where, fix="set spec.model.signature to one of those",
        )
    fetches = [tensor.name for tensor in meta_graph.signature_def[signature].outputs.values()]
    init = meta_graph.signature_def.get("__saved_model_init_op")
    if init is not None:
        fetches.extend(tensor.name for tensor in init.outputs.values())
    for collection in ("saved_model_main_op", "legacy_init_op"):
        if collection in meta_graph.collection_def:
            fetches.extend(meta_graph.collection_def[collection].node_list.value)
    return fetches


def scan_saved_model(directory: Path, signature: str) -> list[Finding]:
    meta_graph = select_meta_graph(read_saved_model(directory))
    return scan_ops(meta_graph.graph_def, serving_fetches(meta_graph, signature, str(directory)))


def scan_model(fmt: str, model_path: Path, source: ModelSource) -> list[Finding] | None:
    """Scan a source model before anything loads it. None for Keras files, which have no graph until
    they are loaded (in safe mode) and exported: scan the exported SavedModel instead."""
    if fmt == "savedmodel":
        return scan_saved_model(model_path, source.signature)
    if fmt == "frozen-graph":
        return scan_ops(read_graph_def(model_path), source.outputs or None)
    if fmt == "checkpoint":
        return scan_ops(read_meta_graph(model_path).graph_def, source.outputs or None)
    return None
