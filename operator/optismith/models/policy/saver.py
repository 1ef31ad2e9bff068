"""Recognising a legitimate saver: the subgraph a loader runs to restore variables (and tools run to save them).

A SavedModel's `saver_def.restore_op_name` is run by the loaders (and by TF Serving) while loading, so whatever
that op depends on runs on the host. Exporters write it in two shapes, and only those pass:

* TF1 `Saver` / `Builder`: `save/Const` (a placeholder with a default) -> RestoreV2 -> Assign(VariableOp)
  -> `save/restore_shard` -> `save/restore_all`; the save side StringJoin/ShardedFilename -> SaveV2 -> Pack ->
  MergeV2Checkpoints.
* TF2 `tf.saved_model.save` / Keras `model.export`: `saver_filename` (a placeholder) -> a call of
  `__inference__traced_restore_*` (Const -> RestoreV2 -> Identity -> AssignVariableOp) and of
  `__inference__traced_save_*` (StaticRegexFullMatch -> Select -> StringJoin -> ShardedFilename -> SaveV2 ->
  MergeV2Checkpoints).

So the restore closure (everything the restore op depends on, and every function it calls) may hold only saver
ops, every checkpoint path in it must derive from the saver's filename tensor (the path the loader feeds), and
saver ops anywhere else are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optismith.models.policy import ops
from optismith.models.policy.graph import Closure, GraphIndex, Loc, Tracer, bare

_COMMON = ops.names("""
    NoOp Const Identity IdentityN Placeholder PlaceholderWithDefault StringJoin ShardedFilename ShardedFilespec
    StaticRegexFullMatch Select SelectV2 Pack VarHandleOp VariableV2 Variable StatefulPartitionedCall
    PartitionedCall DisableCopyOnRead HashTableV2 MutableHashTableV2 MutableHashTableOfTensorsV2
    MutableDenseHashTableV2
""")
RESTORE_SUBGRAPH_OPS = _COMMON | {"RestoreV2", "Restore", "RestoreSlice", "AssignVariableOp", "Assign",
                                  "LookupTableImportV2"}
SAVE_SUBGRAPH_OPS = _COMMON | {"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints", "ReadVariableOp",
                               "LookupTableExportV2", "Shape"}
STRING_DTYPE = 7
MAX_PATH_DEPTH = 16

Refuse = Callable[[Loc | str, str, str], None]  # (where, op, reason)


@dataclass
class SaverSubgraphs:
    """The closures of every saver a MetaGraph declares, merged: what a loader or a tool may run."""

    restore: Closure
    save: Closure
    filename_nodes: set[str]


def _merge(closures: list[Closure]) -> Closure:
    merged = Closure()
    for closure in closures:
        merged.nodes |= closure.nodes
        merged.functions |= closure.functions
    return merged


def check_savers(graph: GraphIndex, savers: list[Any], refuse: Refuse) -> SaverSubgraphs:
    """Check each saver's subgraphs; returns them for placing saver ops found elsewhere."""
    restores, saves, filenames = [], [], set()
    for saver in savers:
        filename = bare(saver.filename_tensor_name)
        filenames.add(filename)
        node = graph.nodes.get(filename)
        if node is None or node.op not in ("Placeholder", "PlaceholderWithDefault", "Const") or \
                node.attr["dtype"].type != STRING_DTYPE:
            refuse(f"saver_def.filename_tensor_name={saver.filename_tensor_name}", node.op if node else "-",
                   "the saver's filename tensor is not a string placeholder or constant")
        if bare(saver.restore_op_name) not in graph.nodes:
            refuse(f"saver_def.restore_op_name={saver.restore_op_name}", "-", "the saver's restore op does not exist")
        restore = graph.closure([saver.restore_op_name])
        save = graph.closure([saver.save_tensor_name]) if saver.save_tensor_name else Closure()
        paths = Tracer(graph, stop={filename}, follow_variables=False)
        for closure, allowed, what in ((restore, RESTORE_SUBGRAPH_OPS, "restore"), (save, SAVE_SUBGRAPH_OPS, "save")):
            for loc, member in _members(graph, closure):
                if member.op not in allowed and member.op not in graph.library:
                    refuse(loc, member.op, f"sits in the saver's {what} subgraph, which loaders run, and is no "
                           "part of a saver")
                if member.op in ops.SAVER_OPS:
                    for index in range(2 if member.op == "MergeV2Checkpoints" else 1):
                        if not _derives_from(paths, loc, member, index, filename, 0):
                            refuse(loc, member.op, f"its checkpoint path (input {index}) does not come from the "
                                   f"saver's filename tensor {filename}, the path the loader gives")
        restores.append(restore)
        saves.append(save)
    return SaverSubgraphs(_merge(restores), _merge(saves), filenames)


def check_saver_op(loc: Loc, node: Any, savers: SaverSubgraphs, serving: Closure, refuse: Refuse) -> None:
    """A saver op outside its saver's subgraph reads or writes checkpoints the loader never named."""
    if loc in serving:
        refuse(loc, node.op, "checkpoint I/O that runs with the signatures or the init op")
    elif node.op in ops.SAVER_RESTORE_ONLY and loc not in savers.restore:
        refuse(loc, node.op, "a checkpoint read outside the saver's restore subgraph")
    elif node.op in ops.SAVER_SAVE_ONLY and loc not in savers.save:
        refuse(loc, node.op, "a checkpoint write outside the saver's save subgraph")


def _members(graph: GraphIndex, closure: Closure) -> list[tuple[Loc, Any]]:
    members = [(Loc(None, name), graph.nodes[name]) for name in closure.nodes]
    members += [(Loc(function, n.name), n) for function in closure.functions for n in graph.library[function].node_def]
    return members


def _data_inputs(node: Any) -> int:
    return len([raw for raw in node.input if not raw.startswith("^")])


def _derives_from(paths: Tracer, loc: Loc, node: Any, index: int, filename: str, depth: int) -> bool:
    """Input `index` of `node` is a path under the filename tensor: the tensor itself, StringJoin(path, constant
    suffixes...), ShardedFilename(path, i, n), or Pack(paths...) for MergeV2Checkpoints."""
    if depth > MAX_PATH_DEPTH:
        return False
    for source in paths.input_sources(loc, node, index):
        if source.node is None or source.loc is None:
            return False
        if source.loc.function is None and source.loc.node == filename:
            continue
        op, count = source.node.op, _data_inputs(source.node)
        if op == "StringJoin" and count >= 1 and _derives_from(paths, source.loc, source.node, 0, filename, depth + 1) \
                and all(_constant_suffix(paths, source.loc, source.node, i, depth + 1) for i in range(1, count)):
            continue
        if op == "ShardedFilename" and _derives_from(paths, source.loc, source.node, 0, filename, depth + 1):
            continue
        if op == "Pack" and count >= 1 and all(
                _derives_from(paths, source.loc, source.node, i, filename, depth + 1) for i in range(count)):
            continue
        return False
    return True


def _constant_suffix(paths: Tracer, loc: Loc, node: Any, index: int, depth: int) -> bool:
    """A suffix is a string constant that cannot climb out ('..', a leading '/'), or a Select between them."""
    if depth > MAX_PATH_DEPTH:
        return False
    for source in paths.input_sources(loc, node, index):
        if source.node is None or source.loc is None:
            return False
        if source.node.op == "Const":
            values = [bytes(v) for v in source.node.attr["value"].tensor.string_val]
            if any(b".." in value or value.startswith(b"/") for value in values):
                return False
            continue
        if source.node.op in ("Select", "SelectV2") and all(
                _constant_suffix(paths, source.loc, source.node, i, depth + 1) for i in (1, 2)):
            continue
        return False
    return True
