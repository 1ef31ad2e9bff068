"""Where one op falls in the policy: allowed, gated (legitimate in one place only) or refused, and why."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from optismith.frameworks import import_tensorflow
from optismith.models.policy import ops
from optismith.models.policy.reviewed import REVIEWED_OPS

Klass = Literal["allowed", "gated", "refused"]


@dataclass(frozen=True)
class Verdict:
    klass: Klass
    category: ops.Category | None = None  # why it is refused
    detail: str = ""


ALLOWED = Verdict("allowed")
GATED = Verdict("gated")


def file_like_arguments(op_def: Any) -> list[str]:
    """Inputs ('name') and attributes ('@name') of an OpDef named like a file, a URL, a graph or a program."""
    hits = [arg.name for arg in op_def.input_arg if ops.FILE_LIKE_ARGUMENT.search(arg.name)]
    return hits + ["@" + attr.name for attr in op_def.attr if ops.FILE_LIKE_ARGUMENT.search(attr.name)]


def refused_family(name: str) -> ops.Category | None:
    for pattern, category in ops.REFUSED_FAMILIES:
        if pattern.search(name):
            return category
    return None


def classify(name: str, op_def: Any | None, reviewed: frozenset[str] = REVIEWED_OPS) -> Verdict:
    """The verdict for op `name`, given its OpDef in the running registry (None when TensorFlow has no such op).
    `reviewed`: the registry the lists were reviewed against; any other op is refused until reviewed."""
    if name in ops.GATED:
        return GATED
    if name in ops.REFUSED:
        return Verdict("refused", ops.REFUSED[name])
    if name in ops.ALLOWED_STATEFUL:
        return ALLOWED
    family = refused_family(name)
    if family is not None:
        return Verdict("refused", family)
    if op_def is None:
        return Verdict("refused", ops.UNREVIEWED, "TensorFlow has no such op (a custom op library?)")
    if name not in reviewed:
        return Verdict("refused", ops.UNREVIEWED, "new in this TensorFlow: not yet reviewed")
    if op_def.is_stateful:
        return Verdict("refused", ops.UNREVIEWED, "a stateful op nobody reviewed")
    flagged = file_like_arguments(op_def)
    if flagged and name not in ops.REVIEWED_FILE_LIKE_STATELESS:
        return Verdict("refused", ops.UNREVIEWED, f"arguments named like files or graphs: {', '.join(flagged)}")
    return ALLOWED


@functools.lru_cache(maxsize=4096)
def op_def(name: str) -> Any | None:
    """The OpDef of a registered op, None when TensorFlow has none of that name."""
    import_tensorflow()
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(name)


@functools.lru_cache(maxsize=4096)
def verdict_of(name: str) -> Verdict:
    return classify(name, op_def(name))


def registry() -> dict[str, Any]:
    """{name: OpDef} of every op this process's TensorFlow registers (internal `_` ops included), as a worker
    that has run the TFLite converter sees it: the converter registers three ops of its own
    (UnidirectionalSequenceLstm, UnidirectionalSequenceRnn, TFLite_Detection_PostProcess) the first time it
    converts, so without that the registry would depend on what the process did before."""
    import_tensorflow()
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    _run_the_tflite_converter_once()
    listing = op_def_pb2.OpList()
    listing.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    return {op.name: op for op in listing.op}


@functools.lru_cache(maxsize=1)
def _run_the_tflite_converter_once() -> None:
    import tensorflow as tf

    double = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([1], tf.float32)])
    tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double).convert()


def policy_names() -> frozenset[str]:
    """Every op name the reviewed lists mention."""
    return frozenset(ops.ALLOWED_STATEFUL) | ops.GATED | frozenset(ops.REFUSED) | ops.REVIEWED_FILE_LIKE_STATELESS


def unsettled(registered: dict[str, Any]) -> dict[str, list[str]]:
    """What a registry holds that the reviewed lists do not settle; every list empty means nothing to review."""
    listed = frozenset(ops.ALLOWED_STATEFUL) | ops.GATED | frozenset(ops.REFUSED)
    return {
        "stateful ops on no list": sorted(
            n for n, o in registered.items() if o.is_stateful and n not in listed and not refused_family(n)),
        "stateless ops with file-like arguments nobody reviewed": sorted(
            n for n, o in registered.items() if not o.is_stateful and n not in listed and not refused_family(n)
            and file_like_arguments(o) and n not in ops.REVIEWED_FILE_LIKE_STATELESS),
        "ops new since the reviewed registry": sorted(set(registered) - REVIEWED_OPS),
        "reviewed ops this TensorFlow no longer has": sorted(REVIEWED_OPS - set(registered)),
        "listed names this TensorFlow does not have": sorted(policy_names() - set(registered)),
    }


def counts(registered: dict[str, Any]) -> dict[str, int]:
    """How many registered ops fall in each class, split by TensorFlow's stateful flag."""
    tally: dict[str, int] = {}
    for name, definition in registered.items():
        key = f"{classify(name, definition).klass} ({'stateful' if definition.is_stateful else 'stateless'})"
        tally[key] = tally.get(key, 0) + 1
    return dict(sorted(tally.items()))
