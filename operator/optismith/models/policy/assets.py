"""Asset files, and tables read from them: only regular files inside the model's own `assets/` directory.

Loaders turn every AssetFileDef into a path with `os.path.join(export_dir, "assets", filename)`, and feed it to
the asset's tensor; an absolute name or `..` escapes the model, and a symbolic link in `assets/` points anywhere.
A table initialised from a text file must take its file name from such an asset tensor, traced back through
identities, function arguments, variables and the object graph's bindings: any other name is a host file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from optismith.models.policy.graph import Loc, Source, Tracer, bare

ASSET_NODE_OPS = frozenset({"Placeholder", "Const"})
FILENAME_INPUT = 1  # InitializeTableFromTextFile(V2)(table_handle, filename)


def asset_file_defs(meta_graph: Any) -> list[Any]:
    """The AssetFileDefs loaders read: the MetaGraph's own, and the older `saved_model_assets` collection."""
    from tensorflow.core.protobuf import meta_graph_pb2

    found = list(meta_graph.asset_file_def)
    if "saved_model_assets" in meta_graph.collection_def:
        for value in meta_graph.collection_def["saved_model_assets"].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            value.Unpack(asset)
            found.append(asset)
    return found


def asset_problem(filename: str, export_dir: Path | None) -> str | None:
    """Why an asset file name does not name a regular file inside `export_dir/assets`, or None when it does."""
    if not filename or filename.startswith("/") or "\\" in filename or "\x00" in filename:
        return "the asset file name is not a relative path"
    parts = filename.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "the asset file name holds '..', '.' or an empty component"
    if export_dir is None:
        return "assets need a SavedModel directory"
    probe = export_dir / "assets"
    if probe.is_symlink():
        return "the assets directory is a symbolic link"
    for part in parts:
        probe = probe / part
        if probe.is_symlink():
            return "the asset file is, or sits under, a symbolic link"
    if not probe.is_file():
        return "the asset file is missing or is no regular file"
    root = (export_dir / "assets").resolve()
    if root not in probe.resolve().parents:
        return "the asset file resolves outside assets/"
    return None


def checked_assets(meta_graph: Any, export_dir: Path | None,
                   refuse: Callable[[str, str, str], None]) -> dict[str, str]:
    """{asset tensor node: file name} of the assets that pass; the others are refused."""
    tensors: dict[str, str] = {}
    for asset in asset_file_defs(meta_graph):
        problem = asset_problem(asset.filename, export_dir)
        if problem:
            refuse(f"asset_file_def[{asset.filename!r}]", "AssetFileDef", problem)
        else:
            tensors[bare(asset.tensor_info.name)] = asset.filename
    return tensors


def check_asset_table(loc: Loc, node: Any, tracer: Tracer, assets: dict[str, str], graph_name: str,
                      refuse: Callable[[Loc, str, str], None]) -> None:
    sources = tracer.input_sources(loc, node, FILENAME_INPUT)
    bad = [source.text(graph_name) for source in sources if not _is_asset(source, assets)]
    if bad or not sources:
        refuse(loc, node.op, "the table's file name does not come from the model's own assets/: it comes from "
               + (", ".join(sorted(set(bad))[:4]) or "nowhere"))


def _is_asset(source: Source, assets: dict[str, str]) -> bool:
    if source.loc is None or source.node is None:
        return False
    if source.node is ASSET_BINDING:
        return True
    return source.loc.function is None and source.node.op in ASSET_NODE_OPS and source.loc.node in assets


class _AssetBinding:
    """The node of a Source that is an asset the object graph binds to a function argument (a valid one)."""

    op = "asset"
    name = "asset"


ASSET_BINDING = _AssetBinding()
