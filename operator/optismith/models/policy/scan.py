"""The scan: every op of every graph and function of a model against the policy, before TensorFlow loads it.

What is checked, for each MetaGraph of a SavedModel (every one, not only the one tagged 'serve'), for a TF1
checkpoint's MetaGraph, and for a frozen GraphDef:

* every node of the main graph and of every library function, called or not (`classify`); a function-valued
  attribute must name a function of the library;
* saver ops only in the saver's own subgraphs, on the path the loader feeds (`saver`);
* tables read from files only from the model's own assets, and every asset inside `assets/` (`assets`);
* no node placed on a remote job.

Nothing here runs a graph: the protobufs are parsed and walked, and TensorFlow's op registry is consulted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optismith.models.formats import read_graph_def, read_meta_graph, read_saved_model
from optismith.models.policy import ops
from optismith.models.policy.assets import ASSET_BINDING, check_asset_table, checked_assets
from optismith.models.policy.classify import verdict_of
from optismith.models.policy.graph import GraphIndex, Loc, Source, Tracer, bare, function_names
from optismith.models.policy.saver import check_saver_op, check_savers

INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "main_op", "init_op", "local_init_op",
                    "table_initializer", "train_op")


@dataclass(frozen=True)
class Finding:
    where: str  # "<graph>/<node>" or "<graph>/fn:<function>/<node>", or a part of the MetaGraph
    op: str
    reason: str
    category: ops.Category

    @property
    def allowable(self) -> bool:
        return self.category.allowable


@dataclass
class ScanReport:
    path: str
    findings: list[Finding] = field(default_factory=list)
    graphs: int = 0
    ops_checked: int = 0
    functions_checked: int = 0
    seconds: float = 0.0

    def refused(self, allow_ops: Iterable[str] = ()) -> list[Finding]:
        """The findings `spec.security.allowOps` does not waive (it waives an op by name, where allowable)."""
        allowed = set(allow_ops)
        return [f for f in self.findings if not (f.allowable and f.op in allowed)]

    def summary(self) -> dict[str, Any]:
        return {"graphs": self.graphs, "ops_checked": self.ops_checked, "functions_checked": self.functions_checked,
                "findings": len(self.findings), "seconds": round(self.seconds, 4)}


class _GraphScan:
    """One graph (a MetaGraph's, or a bare GraphDef) and what a loader does with it."""

    def __init__(self, report: ScanReport, graph_def: Any, name: str, *, meta_graph: Any = None,
                 export_dir: Path | None = None, check_devices: bool = True) -> None:
        self.report = report
        self.graph = GraphIndex(graph_def)
        self.name = name
        self.meta_graph = meta_graph
        self.export_dir = export_dir
        self.check_devices = check_devices

    def refuse(self, where: Loc | str, op: str, reason: str, category: ops.Category = ops.STRUCTURE) -> None:
        text = where.text(self.name) if isinstance(where, Loc) else f"{self.name}/{where}"
        self.report.findings.append(Finding(text, op, reason, category))

    def run(self) -> None:
        meta = self.meta_graph
        assets = checked_assets(meta, self.export_dir, self.refuse) if meta is not None else {}
        savers = check_savers(self.graph, self._savers(), self.refuse)
        serving = self.graph.closure(self._serving_roots())
        tracer = Tracer(self.graph, stop=assets, bindings=self._object_graph_bindings(assets))
        for loc, node in self.graph.all_nodes():
            self.report.ops_checked += 1
            for called in function_names(node):
                if called not in self.graph.library:
                    self.refuse(loc, node.op, f"names function {called!r}, which the library does not have")
            if node.op in self.graph.library:
                continue  # a call by name: the function's own nodes are checked
            if self.check_devices and _remote(node.device):
                self.refuse(loc, node.op, f"is placed on a remote device {node.device!r} (export with "
                            "clear_devices=True)")
            verdict = verdict_of(node.op)
            if verdict.klass == "allowed":
                continue
            if verdict.klass == "refused":
                reason = verdict.category.reason if verdict.category else "refused"
                self.refuse(loc, node.op, f"{reason}{': ' + verdict.detail if verdict.detail else ''}",
                            verdict.category or ops.UNREVIEWED)
            elif node.op in ops.ATTRIBUTE_GATES:
                gate = ops.ATTRIBUTE_GATES[node.op]
                if not gate.passes(node):
                    self.refuse(loc, node.op, f"allowed only when {gate.condition}", gate.category)
            elif node.op in ops.SAVER_OPS:
                check_saver_op(loc, node, savers, serving, lambda w, op, why: self.refuse(w, op, why, ops.FILES))
            elif node.op in ops.ASSET_TABLE_OPS:
                check_asset_table(loc, node, tracer, assets, self.name,
                                  lambda w, op, why: self.refuse(w, op, why, ops.FILES))
        self.report.functions_checked += len(self.graph.library)
        self.report.graphs += 1

    def _savers(self) -> list[Any]:
        meta = self.meta_graph
        if meta is None:
            return []
        from tensorflow.core.protobuf import saver_pb2

        found = [meta.saver_def] if meta.HasField("saver_def") and meta.saver_def.restore_op_name else []
        if "savers" in meta.collection_def:
            for data in meta.collection_def["savers"].bytes_list.value:
                saver = saver_pb2.SaverDef()
                saver.ParseFromString(data)
                found.append(saver)
        return found

    def _serving_roots(self) -> list[str]:
        meta = self.meta_graph
        if meta is None:
            return []
        roots: list[str] = []
        for signature in meta.signature_def.values():
            roots += [t.name for t in signature.outputs.values()] + [t.name for t in signature.inputs.values()]
        for key in INIT_COLLECTIONS:
            if key in meta.collection_def:
                roots += list(meta.collection_def[key].node_list.value)
        return roots

    def _object_graph_bindings(self, assets: dict[str, str]) -> Any:
        """What the TF2 loader passes for a function's captured inputs: the object graph's `bound_inputs`."""
        meta = self.meta_graph
        if meta is None or not meta.HasField("object_graph_def"):
            return None
        objects = meta.object_graph_def
        valid_assets = {index for index, asset in enumerate(meta.asset_file_def)
                        if bare(asset.tensor_info.name) in assets}

        def bindings(function: str, index: int) -> list[Source] | None:
            saved = objects.concrete_functions.get(function) if function in objects.concrete_functions else None
            if saved is None:
                return None
            explicit = len(self.graph.function_args.get(function, [])) - len(saved.bound_inputs)
            if index < explicit:
                return None
            bound = objects.nodes[saved.bound_inputs[index - explicit]]
            kind = bound.WhichOneof("kind")
            if kind == "asset" and bound.asset.asset_file_def_index in valid_assets:
                return [Source(Loc(None, f"asset {bound.asset.asset_file_def_index}"), ASSET_BINDING)]
            return [Source(None, None, f"a {kind} the object graph binds to argument {index} of {function}")]

        return bindings


def _remote(device: str) -> bool:
    lowered = device.lower()
    return "/job:" in lowered and "/job:localhost" not in lowered


def _timed(report: ScanReport, started: float) -> ScanReport:
    report.seconds = time.perf_counter() - started
    return report


def scan_saved_model(directory: Path) -> ScanReport:
    """Every MetaGraph of the SavedModel in `directory`, with its savers and assets."""
    started = time.perf_counter()
    report = ScanReport(str(directory))
    for index, meta in enumerate(read_saved_model(directory).meta_graphs):
        name = f"meta_graphs[{index}:{','.join(meta.meta_info_def.tags) or 'untagged'}]"
        _GraphScan(report, meta.graph_def, name, meta_graph=meta, export_dir=directory).run()
    return _timed(report, started)


def scan_checkpoint(meta_path: Path) -> ScanReport:
    """A TF1 checkpoint's MetaGraph. Devices are not checked: the checkpoint is read as data, never run as saved
    (its variables are read with a checkpoint reader, and the graph is imported with its devices cleared)."""
    started = time.perf_counter()
    report = ScanReport(str(meta_path))
    meta = read_meta_graph(meta_path)
    _GraphScan(report, meta.graph_def, meta_path.name, meta_graph=meta, check_devices=False).run()
    return _timed(report, started)


def scan_graph_def(graph_def: Any, name: str = "graph") -> ScanReport:
    started = time.perf_counter()
    report = ScanReport(name)
    _GraphScan(report, graph_def, name).run()
    return _timed(report, started)


def scan_source(fmt: str, path: Path) -> ScanReport | None:
    """Scan a detected model before anything loads it. None for Keras files, which have no graph until they are
    loaded (in safe mode) and exported: scan the export instead."""
    if fmt == "savedmodel":
        return scan_saved_model(path)
    if fmt == "frozen-graph":
        return scan_graph_def(read_graph_def(path), path.name)
    if fmt == "checkpoint":
        return scan_checkpoint(path)
    return None
