"""Turning every supported source into one baseline: a SavedModel with a serving signature.

Every later stage starts from that SavedModel, so there is one code path for freezing, converting
and serving whatever the user uploaded. Graphs without a signature (frozen GraphDefs, TF1
checkpoints) get one from `spec.model.inputs`/`outputs`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optismith.errors import ModelFormatError, ModelSignatureError
from optismith.frameworks import import_tensorflow
from optismith.graphio import node_name, signature_key, tensor_name
from optismith.models.checkpoints import freeze_checkpoint
from optismith.models.formats import read_graph_def, read_meta_graph
from optismith.spec import ModelSource, TensorSpec


def _unique_keys(names: Sequence[str]) -> list[str]:
    keys: list[str] = []
    for name in names:
        key = signature_key(name)
        while key in keys:
            key += "_"
        keys.append(key)
    return keys


def graph_nodes_summary(graph_def: Any, op: str | None = None, limit: int = 12) -> str:
    names = [n.name for n in graph_def.node if op is None or n.op == op]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_io(graph_def: Any, inputs: Sequence[TensorSpec], outputs: Sequence[str], where: str) -> None:
    tf = import_tensorflow()
    nodes = {n.name: n for n in graph_def.node}
    for spec in inputs:
        node = nodes.get(node_name(spec.name))
        if node is None:
            raise ModelSignatureError(
                f"input {spec.name!r} is not in the graph; its placeholders are: "
                f"{graph_nodes_summary(graph_def, 'Placeholder') or 'none'}",
                where=where, fix="correct spec.model.inputs[].name",
            )
        if node.op == "Placeholder":
            declared = tf.dtypes.as_dtype(node.attr["dtype"].type).name
            if declared != spec.dtype:
                raise ModelSignatureError(
                    f"input {spec.name!r} is {declared} in the graph but spec.model.inputs says {spec.dtype}",
                    where=where, fix=f"set dtype: {declared} for that input",
                )
    consumed = {node_name(source) for n in graph_def.node for source in n.input}
    for output in outputs:
        if node_name(output) not in nodes:
            sinks = [n.name for n in graph_def.node if n.name not in consumed and n.op not in ("NoOp", "Const")]
            raise ModelSignatureError(
                f"output {output!r} is not in the graph; nodes nothing else consumes: "
                f"{', '.join(sinks[:12]) or 'none'}",
                where=where, fix="correct spec.model.outputs",
            )


def save_graph_as_saved_model(graph_def: Any, inputs: Sequence[TensorSpec], outputs: Sequence[str],
                              signature: str, dest: Path, *, where: str = "") -> Path:
    """Wrap a GraphDef as a tf.function whose signature feeds `inputs` and returns `outputs`
    (keys derived from the tensor names: 'logits:0' -> 'logits'), and save it to `dest`."""
    tf = import_tensorflow()
    _check_io(graph_def, inputs, outputs, where)

    def import_graph() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    graph = wrapped.graph
    try:
        feeds = [graph.as_graph_element(tensor_name(spec.name)) for spec in inputs]
        fetches = [graph.as_graph_element(tensor_name(name)) for name in outputs]
        pruned = wrapped.prune(feeds, fetches)
    except (KeyError, ValueError, TypeError) as error:
        raise ModelSignatureError(f"cannot cut the graph at the given inputs/outputs: {error}", where=where,
                                  fix="check spec.model.inputs and spec.model.outputs") from None
    input_keys = _unique_keys([spec.name for spec in inputs])
    output_keys = _unique_keys(list(outputs))
    specs = [
        tf.TensorSpec([None if d < 0 else d for d in spec.shape], tf.dtypes.as_dtype(spec.dtype), name=key)
        for spec, key in zip(inputs, input_keys, strict=True)
    ]

    @tf.function(input_signature=specs)  # type: ignore[untyped-decorator]
    def serve(*args: Any) -> dict[str, Any]:
        results = pruned(*args)
        return dict(zip(output_keys, results, strict=True))

    module = tf.Module()
    module.serve = serve
    module.graph = pruned
    tf.saved_model.save(module, str(dest), signatures={signature: serve.get_concrete_function()})
    return dest


def load_keras(path: Path) -> Any:
    import_tensorflow()
    import keras

    try:
        # safe_mode refuses Lambda layers and other serialized Python code.
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as error:
        raise ModelFormatError(f"cannot load the Keras model: {error}", where=str(path),
                               fix="save it with model.save('model.keras'); custom layers need to be built in "
                               "or exported as a SavedModel (model.export(dir))") from None


def to_saved_model(fmt: str, model_path: Path, source: ModelSource, dest: Path) -> Path:
    """The baseline SavedModel for a detected model, written to `dest` (which must not exist)."""
    if fmt == "savedmodel":
        shutil.copytree(model_path, dest, symlinks=True)  # links are refused before this; never follow one
    elif fmt == "keras":
        load_keras(model_path).export(str(dest), verbose=False)
    elif fmt == "frozen-graph":
        _require_io(source, fmt)
        save_graph_as_saved_model(read_graph_def(model_path), source.inputs, source.outputs, source.signature,
                                  dest, where=str(model_path))
    elif fmt == "checkpoint":
        _require_io(source, fmt)
        _check_io(read_meta_graph(model_path).graph_def, [], source.outputs, str(model_path))
        frozen = freeze_checkpoint(model_path, source.outputs)
        save_graph_as_saved_model(frozen, source.inputs, source.outputs, source.signature, dest,
                                  where=str(model_path))
    else:
        raise ModelFormatError(f"unsupported format {fmt!r}", where=str(model_path))
    return dest


def _require_io(source: ModelSource, fmt: str) -> None:
    if not source.inputs or not source.outputs:
        raise ModelSignatureError(
            f"a {fmt} carries no signature, so its inputs and outputs must be given",
            where="spec.model", fix="set spec.model.inputs (name, dtype, shape) and spec.model.outputs",
        )
