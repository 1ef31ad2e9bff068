"""Freezing: a SavedModel signature becomes one GraphDef with its variables folded into constants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optismith.errors import ModelFormatError, ModelSignatureError
from optismith.frameworks import import_tensorflow
from optismith.graphio import GraphIO, TensorIO, read_io, write_io
from optismith.models.analysis import constant_parameters


@dataclass
class FrozenGraph:
    graph_def: Any
    io: GraphIO
    parameter_count: int


def _tensor_io(key: str, tensor: Any) -> TensorIO:
    shape = tuple(tensor.shape.as_list()) if tensor.shape.rank is not None else ()
    return TensorIO(name=key, tensor=tensor.name, dtype=tensor.dtype.name, shape=shape)


def load_signature(directory: Path, signature: str) -> tuple[Any, Any]:
    """(loaded object, concrete function) of a SavedModel signature. Keep the loaded object alive
    while using the function: it owns the variables the function reads."""
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as error:
        raise ModelFormatError(f"TensorFlow cannot load the SavedModel: {error}", where=str(directory),
                               fix="check that the SavedModel loads with tf.saved_model.load") from None
    if signature not in loaded.signatures:
        raise ModelSignatureError(f"the model has no signature {signature!r}; it has {sorted(loaded.signatures)}",
                                  where=str(directory), fix="set spec.model.signature to one of those")
    return loaded, loaded.signatures[signature]


def freeze_saved_model(directory: Path, signature: str, *, lower_control_flow: bool = True) -> FrozenGraph:
    """Fold the signature's variables into constants. Inputs and outputs keep the signature's keys,
    sorted: the order TensorFlow flattens a signature's keyword arguments and output dict in.
    `lower_control_flow=False` keeps functional While/If ops (with their bodies in the graph's function
    library) instead of lowering them to Switch/Merge: converters recognise recurrent layers only there."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    tf = import_tensorflow()
    _loaded, function = load_signature(directory, signature)
    frozen = convert_variables_to_constants_v2(function, lower_control_flow=lower_control_flow)
    input_keys = sorted(function.structured_input_signature[1])
    output_keys = sorted(function.structured_outputs)
    graph_inputs = [t for t in frozen.inputs if t.dtype != tf.resource]
    if len(graph_inputs) != len(input_keys) or len(frozen.outputs) != len(output_keys):
        raise ModelFormatError(
            f"freezing changed the signature: {len(input_keys)} inputs/{len(output_keys)} outputs became "
            f"{len(graph_inputs)}/{len(frozen.outputs)}", where=str(directory),
            fix="the signature probably takes non-tensor inputs; export a signature with tensor inputs only",
        )
    io = GraphIO(
        inputs=tuple(_tensor_io(k, t) for k, t in zip(input_keys, graph_inputs, strict=True)),
        outputs=tuple(_tensor_io(k, t) for k, t in zip(output_keys, frozen.outputs, strict=True)),
    )
    graph_def = frozen.graph.as_graph_def()
    variables = {id(v): v for v in function.variables}
    parameters = sum(int(v.shape.num_elements() or 0) for v in variables.values() if v.dtype.is_floating)
    return FrozenGraph(graph_def=graph_def, io=io, parameter_count=parameters or constant_parameters(graph_def))


def write_graph(graph_def: Any, io: GraphIO, directory: Path, filename: str) -> Path:
    """`directory/filename` (binary GraphDef) plus `directory/io.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(graph_def.SerializeToString())
    write_io(directory, io)
    return path


def read_graph(path: Path) -> tuple[Any, GraphIO]:
    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    return graph_def, read_io(path.parent)
