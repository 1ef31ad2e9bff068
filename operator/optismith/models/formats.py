"""Recognising a model's format from its files, and reading the protobufs that describe it.

Supported: a SavedModel directory (saved_model.pb), a Keras file (.keras, .h5), a frozen GraphDef
(.pb), and a TF1 checkpoint (.meta graph plus its .index/.data files).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from optismith.errors import ModelFormatError, ModelSignatureError
from optismith.frameworks import import_tensorflow

SUPPORTED = ("savedmodel (a directory with saved_model.pb), keras (.keras, .h5), "
             "frozen-graph (a GraphDef .pb), checkpoint (.meta with its .index/.data files)")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _format_of_file(path: Path) -> str | None:
    name = path.name.lower()
    if name == "saved_model.pb":
        return "savedmodel"
    if name.endswith(_KERAS_SUFFIXES):
        return "keras"
    if name.endswith(".pb"):
        return "frozen-graph"
    if name.endswith(".meta"):
        return "checkpoint"
    return None


def _candidates(directory: Path) -> list[tuple[str, Path]]:
    """Models found in a directory or one level below it."""
    if (directory / "saved_model.pb").is_file():
        return [("savedmodel", directory)]  # its assets/ may hold .pb files that are not models
    found: list[tuple[str, Path]] = []
    for folder in [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]:
        if (folder / "saved_model.pb").is_file():
            found.append(("savedmodel", folder))
            continue
        for path in sorted(folder.iterdir()):
            fmt = _format_of_file(path) if path.is_file() else None
            if fmt is not None:
                found.append((fmt, path))
    return found


def _describe(directory: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return shown or "nothing (the directory is empty)"


def detect_format(path: Path, declared: str = "auto") -> tuple[str, Path]:
    """(format, model path): the SavedModel directory, the .keras/.h5 file, the .pb file, or the
    checkpoint's .meta file. The files are parsed enough to reject corrupt ones here, with a message
    naming the file, rather than deep inside a loader."""
    if not path.exists():
        raise ModelFormatError("the model path does not exist", where=str(path), fix="check spec.model.uri")
    if path.is_dir():
        candidates = _candidates(path)
        if declared != "auto":
            candidates = [c for c in candidates if c[0] == declared] or candidates
        kinds = sorted({fmt for fmt, _ in candidates})
        if not candidates:
            raise ModelFormatError(f"unknown model format: no model found; the directory holds {_describe(path)}",
                                   where=str(path),
                                   fix=f"point spec.model.uri at one of: {SUPPORTED}")
        if len(candidates) > 1:
            listed = ", ".join(f"{p.relative_to(path)} ({fmt})" for fmt, p in candidates[:8])
            raise ModelFormatError(
                f"found several models ({listed}); cannot tell which to optimize", where=str(path),
                fix="point spec.model.uri at one of them" + ("" if len(kinds) == 1 else " or set spec.model.format"),
            )
        fmt, model_path = candidates[0]
    else:
        detected = _format_of_file(path)
        if detected is None:
            raise ModelFormatError(f"unknown model format: {path.name!r} is none of the supported kinds",
                                   where=str(path), fix=f"use one of: {SUPPORTED}")
        fmt, model_path = detected, (path.parent if detected == "savedmodel" else path)
    if declared not in ("auto", fmt):
        raise ModelFormatError(
            f"spec.model.format is {declared!r} but the files are a {fmt} model ({model_path.name})",
            where=str(model_path), fix=f"set spec.model.format to {fmt!r} or 'auto', or point at a {declared} model",
        )
    _validate(fmt, model_path)
    return fmt, model_path


def _validate(fmt: str, path: Path) -> None:
    if fmt == "savedmodel":
        read_saved_model(path)
    elif fmt == "frozen-graph":
        read_graph_def(path)
    elif fmt == "checkpoint":
        read_meta_graph(path)
        checkpoint_prefix(path)
    elif path.name.lower().endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise ModelFormatError("not a valid .keras file (it is not a zip archive)", where=str(path),
                                   fix="save the model with model.save('model.keras')")
    else:
        with path.open("rb") as handle:
            if handle.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
                raise ModelFormatError("not a valid .h5 file (no HDF5 signature)", where=str(path),
                                       fix="save the model with model.save('model.h5') or use .keras")


def _parse(message: Any, path: Path, what: str, fix: str) -> Any:
    data = path.read_bytes()
    try:
        message.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError, or RuntimeWarning-like subclasses
        raise ModelFormatError(f"not a valid {what}: {error}", where=str(path), fix=fix) from None
    return message


def read_saved_model(directory: Path) -> Any:
    """The SavedModel protobuf of a SavedModel directory."""
    import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    path = directory / "saved_model.pb"
    fix = "re-export the model with tf.saved_model.save or model.export"
    proto = _parse(saved_model_pb2.SavedModel(), path, "SavedModel", fix)
    if not proto.meta_graphs:
        raise ModelFormatError("not a valid SavedModel: it holds no MetaGraph", where=str(path), fix=fix)
    return proto


def read_graph_def(path: Path) -> Any:
    tf = import_tensorflow()
    graph_def = _parse(tf.compat.v1.GraphDef(), path, "GraphDef",
                       "write the frozen graph with tf.io.write_graph(graph_def, dir, name, as_text=False)")
    if not graph_def.node:
        raise ModelFormatError("not a valid GraphDef: it has no nodes", where=str(path),
                               fix="write the frozen graph with tf.io.write_graph(..., as_text=False)")
    return graph_def


def read_meta_graph(path: Path) -> Any:
    tf = import_tensorflow()
    meta = _parse(tf.compat.v1.MetaGraphDef(), path, "MetaGraphDef",
                  "save the checkpoint with tf.compat.v1.train.Saver().save(session, prefix)")
    if not meta.graph_def.node:
        raise ModelFormatError("not a valid MetaGraphDef: its graph has no nodes", where=str(path),
                               fix="save the checkpoint with tf.compat.v1.train.Saver().save(session, prefix)")
    return meta


def checkpoint_prefix(meta_path: Path) -> str:
    """The checkpoint prefix next to a .meta file: '<stem>' when '<stem>.index' exists, else the
    latest checkpoint named by the directory's `checkpoint` file."""
    stem = meta_path.with_suffix("")
    if stem.with_name(stem.name + ".index").is_file():
        return str(stem)
    tf = import_tensorflow()
    latest = tf.train.latest_checkpoint(str(meta_path.parent))
    if latest and Path(latest + ".index").is_file():
        return str(latest)
    raise ModelFormatError(
        f"the checkpoint data for {meta_path.name} is missing (no {stem.name}.index/.data files)",
        where=str(meta_path.parent), fix="include the .index and .data-* files saved with the .meta file",
    )


def select_meta_graph(saved_model: Any) -> Any:
    """The MetaGraph TF Serving would load: tagged 'serve', else the only one."""
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    return saved_model.meta_graphs[0]


def available_signatures(meta_graph: Any) -> list[str]:
    return sorted(key for key in meta_graph.signature_def if not key.startswith("__"))


def signature_def(meta_graph: Any, signature: str, where: str) -> Any:
    """The SignatureDef named `signature`, or ModelSignatureError naming the ones that exist."""
    if signature not in meta_graph.signature_def:
        raise ModelSignatureError(
            f"the model has no signature {signature!r}; it has {available_signatures(meta_graph)}",
            where=where, fix="set spec.model.signature to one of those",
        )
    return meta_graph.signature_def[signature]
