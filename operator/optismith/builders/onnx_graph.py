"""A small editable view of an ONNX graph for the canonicalisation rewrites: who produces and who consumes a
tensor, constant values (initializers and Constant nodes), and node replacement that keeps the node list in
topological order."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


class GraphView:
    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self._constants = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                self._constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self._names = itertools.count()
        self.refresh()

    @property
    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def refresh(self) -> None:
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in dict.fromkeys(node.input):  # a node reading a tensor twice (x * x) is one consumer
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        return self._constants.get(name)

    def scalar(self, name: str) -> float | None:
        value = self.constant(name)
        return float(value.reshape(())) if value is not None and value.size == 1 else None

    def parent(self, node: Any, index: int, op_type: str) -> Any:
        """The node producing `node.input[index]` when it is an `op_type`, else None."""
        if index >= len(node.input):
            return None
        found = self.producer.get(node.input[index])
        return found if found is not None and found.op_type == op_type else None

    def only_use(self, name: str) -> bool:
        """`name` feeds exactly one node and is not a graph output (so its producer may be removed)."""
        return name not in self.outputs and len(self.consumers.get(name, [])) == 1

    def add_constant(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.unique(hint)
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        self._constants[name] = value
        return name

    def unique(self, hint: str) -> str:
        taken = set(self.producer) | {t.name for t in self.graph.initializer} | {i.name for i in self.graph.input}
        while True:
            name = f"{hint}/canonical_{next(self._names)}"
            if name not in taken:
                return name

    def replace(self, remove: list[Any], add: list[Any]) -> None:
        """Put `add` (in order) where the last of `remove` was, and drop `remove`: each added node's
        inputs are produced before the last removed node, so the order stays topological."""
        nodes = self._detached()
        gone = {tuple(r.output) for r in remove}  # protobuf hands out a new wrapper per access: match by outputs
        positions = [i for i, n in enumerate(nodes) if tuple(n.output) in gone]
        at = max(positions)
        assert len(positions) == len(remove), "a node to remove is not in the graph"
        kept = [n for i, n in enumerate(nodes) if i not in positions[:-1] and i != at]
        before = sum(1 for i in range(at) if i not in positions)
        del self.graph.node[:]
        self.graph.node.extend(kept[:before] + add + kept[before:])
        self.refresh()

    def _detached(self) -> list[Any]:
        """Copies of the nodes, safe to keep while the graph's node list is cleared and refilled."""
        from onnx import NodeProto

        copies = []
        for node in self.graph.node:
            copy = NodeProto()
            copy.CopyFrom(node)
            copies.append(copy)
        return copies

    def drop_unused(self) -> None:
        """Remove nodes none of whose outputs is used (what a rewrite left behind), and unused initializers."""
        while True:
            dead = [n for n in self.graph.node
                    if not any(out in self.outputs or self.consumers.get(out) for out in n.output)]
            if not dead:
                break
            gone = {tuple(d.output) for d in dead}
            kept = [n for n in self._detached() if tuple(n.output) not in gone]
            del self.graph.node[:]
            self.graph.node.extend(kept)
            self.refresh()
        used = {name for node in self.graph.node for name in node.input}
        kept_init = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept_init)
