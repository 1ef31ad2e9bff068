"""TF1 checkpoints (a .meta graph with .index/.data files) read as data: the checkpoint's own saver never runs.

The saver's restore op is part of the untrusted graph, and running it runs whatever it depends on. So the graph is
cut at the requested outputs (training, saving and init ops fall away), the variable values are read with a
checkpoint reader, and every variable is replaced by a constant: nothing of the graph is executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optismith.errors import ModelFormatError
from optismith.frameworks import import_tensorflow
from optismith.graphio import node_name
from optismith.models.formats import checkpoint_prefix, read_meta_graph

REF_VARIABLE_OPS = ("VariableV2", "Variable")
RESOURCE_VARIABLE_OP = "VarHandleOp"


def freeze_checkpoint(meta_path: Path, outputs: Sequence[str]) -> Any:
    """A GraphDef of the .meta graph cut at `outputs` (which must exist), with the checkpoint's variables as
    constants."""
    tf = import_tensorflow()
    meta = read_meta_graph(meta_path)
    prefix = checkpoint_prefix(meta_path)
    inference = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, [node_name(name) for name in outputs])
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise ModelFormatError(f"cannot read the checkpoint: {error}", where=prefix,
                               fix="ship the .meta with the .index/.data files saved alongside it") from None
    return fold_variables(inference, reader, prefix)


def _constant(name: str, value: Any, dtype: int) -> Any:
    tf = import_tensorflow()
    node = tf.compat.v1.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = dtype
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=tf.dtypes.as_dtype(dtype)))
    return node


def fold_variables(graph_def: Any, reader: Any, where: str) -> Any:
    """`graph_def` with each variable read replaced by a constant holding the checkpoint's value: ref variables
    (VariableV2) become constants, resource variables' reads (ReadVariableOp, ResourceGather) become constants
    (and a GatherV2). Devices are cleared: the checkpoint may come from a distributed job."""
    tf = import_tensorflow()
    stored = reader.get_variable_to_shape_map()
    variables = {n.name: n for n in graph_def.node if n.op in (*REF_VARIABLE_OPS, RESOURCE_VARIABLE_OP)}

    def value(name: str) -> Any:
        if name not in stored:
            raise ModelFormatError(f"variable {name!r} of the graph is not in the checkpoint (it holds "
                                   f"{', '.join(sorted(stored)[:8])})", where=where,
                                   fix="ship the checkpoint written for this .meta graph")
        return reader.get_tensor(name)

    folded = tf.compat.v1.GraphDef()
    folded.versions.CopyFrom(graph_def.versions)
    folded.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        source = node_name(node.input[0]) if node.input else ""
        resource = source if variables.get(source) is not None and \
            variables[source].op == RESOURCE_VARIABLE_OP else None
        if node.op in REF_VARIABLE_OPS:
            folded.node.append(_constant(node.name, value(node.name), node.attr["dtype"].type))
        elif node.op == RESOURCE_VARIABLE_OP:
            continue  # its reads become constants below
        elif node.op == "ReadVariableOp" and resource:
            folded.node.append(_constant(node.name, value(resource), node.attr["dtype"].type))
        elif node.op == "ResourceGather" and resource:
            params = _constant(f"{node.name}/folded_params", value(resource), node.attr["dtype"].type)
            axis = _constant(f"{node.name}/folded_axis", 0, tf.int32.as_datatype_enum)
            gather = tf.compat.v1.NodeDef(name=node.name, op="GatherV2",
                                          input=[params.name, node.input[1], axis.name])
            gather.attr["Tparams"].type = node.attr["dtype"].type
            gather.attr["Tindices"].CopyFrom(node.attr["Tindices"])
            gather.attr["Taxis"].type = tf.int32.as_datatype_enum
            gather.attr["batch_dims"].i = node.attr["batch_dims"].i
            folded.node.extend([params, axis, gather])
        else:
            users = [node_name(raw) for raw in node.input if not raw.startswith("^")
                     and variables.get(node_name(raw)) is not None and variables[node_name(raw)].op ==
                     RESOURCE_VARIABLE_OP]
            if users:
                raise ModelFormatError(f"op {node.name} ({node.op}) uses variable {users[0]!r} in a way that cannot "
                                       "be folded into a constant", where=where,
                                       fix="export the model as a SavedModel instead of a checkpoint")
            copy = folded.node.add()
            copy.CopyFrom(node)
            del copy.input[:]
            copy.input.extend(raw for raw in node.input if not (raw.startswith("^") and raw[1:] in variables))
    for node in folded.node:
        node.device = ""
    return folded
