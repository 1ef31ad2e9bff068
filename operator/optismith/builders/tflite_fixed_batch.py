"""TFLite from a fixed-batch graph: the fallback for recurrent models (Keras LSTM/GRU, TF1 `while` loops).

A Keras RNN keeps its per-step outputs in a tensor list whose element shape was traced as [-1, units]
(batch unknown); TFLite's builtin ops take only tensor lists with a static element shape
(`'tf.TensorListReserve' op requires element_shape to be static`), and a restored SavedModel function
cannot be traced again at a static shape. So the fallback converts the frozen graph with its While loops
kept functional (TF1 v1 loops are functionalized by the TF1 converter) through the TF1 converter with every
input's shape fixed, batch 1, and `_experimental_default_to_single_batch_in_tensor_list_ops` (the
converter's own option for exactly this). The loop becomes a builtin WHILE. The artifact then runs only at
batch 1: its details say so (`fixed_batch`), and a larger batch fails in the runtime instead of computing
something else. Flex (SELECT_TF_OPS with `_experimental_lower_tensor_list_ops=False`) is not offered:
ai-edge-litert 2.3's interpreter refuses the result ("Select TensorFlow op(s) ... are not supported by this
interpreter. Make sure you apply/link the Flex delegate"), so no runtime here could measure it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from optismith import tensors
from optismith.builders.base import BuildInputs
from optismith.builders.reference import Calibration
from optismith.frameworks import import_tensorflow

FIXED_BATCH = 1
# Measured with TF 2.21: calibrating a graph with a While loop (Keras LSTM/GRU at a fixed batch, or a TF1
# loop through from_saved_model) kills the process with a segfault in the converter's calibrator, which
# would take the whole stage down: not attempted.
INT8_CRASH = ("full int8 not attempted: TF 2.21's TFLite calibrator segfaults (calibrator._feed_tensors) on "
              "graphs with a While loop (op While / TF1 Enter-Exit)")
_LOOP_OPS = {"While", "StatelessWhile", "Enter", "Exit", "NextIteration", "Switch", "Merge"}


def has_loops(inputs: BuildInputs) -> bool:
    """Whether the frozen graph (or a function it calls) has control flow: the freeze stage lowers While
    loops to Switch/Merge."""
    graph_def, _, _ = inputs.frozen()
    ops = {node.op for node in graph_def.node}
    ops |= {node.op for function in graph_def.library.function for node in function.node_def}
    return bool(_LOOP_OPS & ops)
# What the TFLite converter says when a graph needs the fixed-batch path: tensor lists with an unknown
# element shape (TF2 While loops), or TF1 control flow that the TF2 SavedModel path does not functionalize.
_NEEDS_FIXED_BATCH = ("TensorListReserve", "tensor list ops", "TensorArrayV3", "control flow v1")


def applies(error: BaseException) -> bool:
    return any(text in str(error) for text in _NEEDS_FIXED_BATCH)


def converter(inputs: BuildInputs, why: str) -> tuple[Any, list[str], dict[str, Any]]:
    """(TF1 TFLiteConverter at batch 1, its input tensor names in feed order, the details to record)."""
    tf = import_tensorflow()
    graph_def, io, source = inputs.functional_frozen()
    shapes = _fixed_shapes(inputs, [(t.name, t.shape) for t in io.inputs])
    graph = tf.compat.v1.GraphDef()
    graph.CopyFrom(graph_def)
    output_arrays = [_named_output(tf, graph, t.name, t.tensor, t.dtype) for t in io.outputs]
    input_arrays = [tensors.bare_name(t.tensor) for t in io.inputs]
    converter = tf.compat.v1.lite.TFLiteConverter(
        graph, None, None, input_arrays_with_shape=list(zip(input_arrays, shapes, strict=True)),
        output_arrays=output_arrays,
    )
    converter._experimental_default_to_single_batch_in_tensor_list_ops = True
    details = {"fixed_batch": FIXED_BATCH, "input_shapes": dict(zip([t.name for t in io.inputs], shapes, strict=True)),
               "source": source,
               "why_fixed_batch": f"the SavedModel converted with a dynamic batch failed: {why}"}
    return converter, [t.name for t in io.inputs], details


def representative(calibration: Calibration, names: list[str]) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration samples one at a time, as the TF1 converter takes them: a list in input order."""
    def samples() -> Iterator[list[np.ndarray]]:
        order = tensors.match_names(calibration.names, names)
        for batch in calibration.batches(FIXED_BATCH, complete_only=True):
            arrays = list(batch.values())
            yield [arrays[i] for i in order]

    return samples


def _fixed_shapes(inputs: BuildInputs, described: list[tuple[str, tuple[int | None, ...]]]) -> list[list[int]]:
    """Batch 1 and every other dimension static: the graph's own, else the sample inputs' (recorded)."""
    samples = inputs.reference.inputs_by_name() if inputs.reference.has_samples else {}
    shapes = []
    for name, shape in described:
        dims = list(shape[1:])
        if any(d is None or d < 0 for d in dims):
            if name not in samples:
                raise ValueError(f"input {name} {tensors.shape_text(shape)} has a dynamic dimension besides the "
                                 "batch and there are no sample inputs to fix it from")
            dims = [int(d) for d in samples[name].shape[1:]]
        shapes.append([FIXED_BATCH, *(int(d) for d in dims)])  # type: ignore[arg-type]
    return shapes


def _named_output(tf: Any, graph: Any, key: str, tensor: str, dtype: str) -> str:
    """An Identity named after the signature key, so the artifact's outputs carry the model's names."""
    taken = {node.name for node in graph.node}
    name = key if key not in taken else f"{key}_output"
    node = graph.node.add()
    node.name, node.op = name, "Identity"
    node.input.append(tensor[:-2] if tensor.endswith(":0") else tensor)
    node.attr["T"].type = tf.as_dtype(dtype).as_datatype_enum
    return name
