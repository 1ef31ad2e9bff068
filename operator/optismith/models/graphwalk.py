"""Walking a GraphDef the way TensorFlow executes it: back from the fetched nodes, into every
function the reached nodes call (call ops, `f`/`then_branch`/`body`-style attributes, lists of them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from optismith.graphio import node_name

CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


@dataclass(frozen=True)
class Reached:
    node: Any  # NodeDef
    function: str | None  # None for the main graph

    @property
    def location(self) -> str:
        return self.node.name if self.function is None else f"{self.function}/{self.node.name}"


def _called_functions(node: Any, library: dict[str, Any]) -> list[str]:
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(func.name for func in value.list.func)
    return [name for name in names if name in library]


def is_call(node: Any, library: dict[str, Any]) -> bool:
    """A node whose work is done by the functions it calls (counted instead of the node)."""
    return node.op in library or (node.op in CALL_OPS and bool(_called_functions(node, library)))


def reachable(graph_def: Any, fetches: Iterable[str] | None = None) -> Iterator[Reached]:
    """Nodes that can run when `fetches` (node or tensor names) are fetched; every node when None.
    Each function body is visited once, whole, however many nodes call it."""
    library = {function.signature.name: function for function in graph_def.library.function}
    by_name = {node.name: node for node in graph_def.node}
    wanted = by_name if fetches is None else [node_name(name) for name in fetches]
    pending = [name for name in wanted if name in by_name]
    seen: set[str] = set()
    functions: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        node = by_name[name]
        yield Reached(node, None)
        functions.extend(_called_functions(node, library))
        pending.extend(node_name(source) for source in node.input if node_name(source) in by_name)
    visited: set[str] = set()
    while functions:
        function_name = functions.pop()
        if function_name in visited:
            continue
        visited.add(function_name)
        for node in library[function_name].node_def:
            yield Reached(node, function_name)
            functions.extend(_called_functions(node, library))
