"""A GraphDef and its function library, indexed for the scan: every node wherever it sits, what runs when a node
is fetched, and where a tensor comes from (through identities, function arguments and variables)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

PASS_THROUGH = frozenset({"Identity", "IdentityN", "Snapshot", "StopGradient", "PlaceholderWithDefault"})
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
BRANCH_OPS = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})  # input 0 is the condition or index
VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})
ASSIGN_OPS = frozenset({"AssignVariableOp", "Assign"})
MAX_TRACE_DEPTH = 64


def bare(name: str) -> str:
    """'^node', 'node:1' -> 'node'"""
    return name.lstrip("^").partition(":")[0]


def function_names(node: Any) -> list[str]:
    """Functions a node names in its attributes (f, body, then_branch, branches, ...)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(func.name for func in value.list.func)
    return names


@dataclass(frozen=True)
class Loc:
    """Where a node sits: the main graph (function None) or a function of the library."""

    function: str | None
    node: str

    def text(self, graph: str) -> str:
        return f"{graph}/{self.node}" if self.function is None else f"{graph}/fn:{self.function}/{self.node}"


@dataclass
class Closure:
    """What can run when some nodes are fetched: main-graph nodes, and whole functions."""

    nodes: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    def __contains__(self, loc: Loc) -> bool:
        return loc.node in self.nodes if loc.function is None else loc.function in self.functions


class GraphIndex:
    def __init__(self, graph_def: Any) -> None:
        self.graph_def = graph_def
        self.nodes = {n.name: n for n in graph_def.node}
        self.library = {f.signature.name: f for f in graph_def.library.function}
        self.function_nodes = {name: {n.name: n for n in f.node_def} for name, f in self.library.items()}
        self.function_args = {name: [a.name for a in f.signature.input_arg] for name, f in self.library.items()}
        self.callers: dict[str, list[tuple[Loc, Any]]] = {}
        for loc, node in self.all_nodes():
            for called in self.called(node):
                self.callers.setdefault(called, []).append((loc, node))

    def all_nodes(self) -> Iterator[tuple[Loc, Any]]:
        """Every node of the main graph and of every library function, called or not."""
        for node in self.graph_def.node:
            yield Loc(None, node.name), node
        for name, function in self.library.items():
            for node in function.node_def:
                yield Loc(name, node.name), node

    def called(self, node: Any) -> list[str]:
        return ([node.op] if node.op in self.library else []) + function_names(node)

    def node(self, loc: Loc) -> Any | None:
        if loc.function is None:
            return self.nodes.get(loc.node)
        return self.function_nodes.get(loc.function, {}).get(loc.node)

    def data_input(self, loc: Loc, node: Any, index: int) -> tuple[Loc | None, int] | None:
        """The producer of data input `index`: (its Loc, output index), or (None, argument index) when it is an
        argument of the enclosing function; None when the node has no such input."""
        data = [raw for raw in node.input if not raw.startswith("^")]
        if index >= len(data):
            return None
        raw = data[index]
        if loc.function is None:
            name, _, output = raw.partition(":")
            return Loc(None, name), int(output or 0)
        parts = raw.split(":")
        arguments = self.function_args[loc.function]
        if len(parts) == 1 and parts[0] in arguments and parts[0] not in self.function_nodes[loc.function]:
            return None, arguments.index(parts[0])
        return Loc(loc.function, parts[0]), int(parts[2]) if len(parts) == 3 else 0

    def closure(self, roots: Iterable[str]) -> Closure:
        """What runs when `roots` (main-graph node or tensor names) are fetched: their ancestors through data and
        control edges, and every function any of them calls, whole and transitively."""
        found = Closure()
        pending = [bare(root) for root in roots if bare(root) in self.nodes]
        functions: list[str] = []
        while pending:
            name = pending.pop()
            if name in found.nodes:
                continue
            found.nodes.add(name)
            functions.extend(self.called(self.nodes[name]))
            pending.extend(bare(raw) for raw in self.nodes[name].input if bare(raw) in self.nodes)
        while functions:
            name = functions.pop()
            if name in found.functions or name not in self.library:
                continue
            found.functions.add(name)
            for node in self.library[name].node_def:
                functions.extend(self.called(node))
        return found


@dataclass(frozen=True)
class Source:
    """Where a traced tensor comes from: a node, or the reason the trace stopped (`loc` None)."""

    loc: Loc | None
    node: Any | None
    why: str = ""

    def text(self, graph: str) -> str:
        return self.loc.text(graph) if self.loc is not None else f"<{self.why}>"


# (function, argument index) -> sources a loader binds to it (the object graph's captured inputs)
Bindings = Callable[[str, int], list[Source] | None]


class Tracer:
    """Follows a tensor back through pass-through ops, function arguments (to every call site, and to what the
    object graph binds), and variable reads (to every assignment of the variable). Anything else ends the trace
    at that node; `stop` names main-graph nodes where it ends on purpose (asset tensors, the saver's filename)."""

    def __init__(self, graph: GraphIndex, stop: Iterable[str] = (), *, follow_variables: bool = True,
                 bindings: Bindings | None = None) -> None:
        self.graph = graph
        self.stop = set(stop)
        self.follow_variables = follow_variables
        self.bindings = bindings
        self._writers: dict[Loc, list[tuple[Loc, Any]]] | None = None

    def input_sources(self, loc: Loc, node: Any, index: int) -> list[Source]:
        producer = self.graph.data_input(loc, node, index)
        if producer is None:
            return [Source(None, None, f"{node.name} has no input {index}")]
        return list(self._sources(producer[0], producer[1], loc.function, 0))

    def _sources(self, loc: Loc | None, index: int, function: str | None, depth: int) -> Iterator[Source]:
        if depth > MAX_TRACE_DEPTH:
            yield Source(None, None, "the trace is too deep")
            return
        if loc is None:
            yield from self._argument(function or "", index, depth)
            return
        node = self.graph.node(loc)
        if node is None:
            yield Source(None, None, f"no node {loc.node}")
        elif loc.function is None and loc.node in self.stop:
            yield Source(loc, node)
        elif node.op in PASS_THROUGH:
            yield from self._input(loc, node, index if node.op == "IdentityN" else 0, depth)
        elif node.op == "ReadVariableOp" and self.follow_variables:
            yield from self._variable_values(loc, node, depth)
        else:
            yield Source(loc, node)

    def _input(self, loc: Loc, node: Any, index: int, depth: int) -> Iterator[Source]:
        producer = self.graph.data_input(loc, node, index)
        if producer is None:
            yield Source(None, None, f"{node.name} has no input {index}")
        else:
            yield from self._sources(producer[0], producer[1], loc.function, depth + 1)

    def _argument(self, function: str, index: int, depth: int) -> Iterator[Source]:
        bound = self.bindings(function, index) if self.bindings else None
        if bound is not None:
            yield from bound
        callers = self.graph.callers.get(function, [])
        if not callers and bound is None:
            yield Source(None, None, f"argument {index} of {function}, which nothing calls")
        for caller_loc, caller in callers:
            if caller.op in self.graph.library or caller.op in CALL_OPS:
                yield from self._input(caller_loc, caller, index, depth)
            elif caller.op in BRANCH_OPS:
                yield from self._input(caller_loc, caller, index + 1, depth)
            else:
                yield Source(None, None, f"argument {index} of {function}, passed by a {caller.op}")

    def _variable_values(self, loc: Loc, node: Any, depth: int) -> Iterator[Source]:
        for variable in self._input(loc, node, 0, depth):
            if variable.node is None or variable.loc is None or variable.node.op not in VARIABLE_OPS:
                what = variable.why or getattr(variable.node, "op", "?")
                yield Source(None, None, f"a read of a handle that is no variable ({what})")
                continue
            writers = self.writers().get(variable.loc, [])
            if not writers:
                yield Source(None, None, f"variable {variable.loc.node}, restored from the checkpoint")
            for writer_loc, writer in writers:
                yield from self._input(writer_loc, writer, 1, depth)

    def writers(self) -> dict[Loc, list[tuple[Loc, Any]]]:
        """Every assignment of every variable, by the variable's node (built on first use: rarely needed).
        An assignment whose variable cannot be traced counts for every variable."""
        if self._writers is None:
            writers: dict[Loc, list[tuple[Loc, Any]]] = {}
            untraced: list[tuple[Loc, Any]] = []
            plain = Tracer(self.graph, follow_variables=False, bindings=self.bindings)
            for loc, node in self.graph.all_nodes():
                if node.op not in ASSIGN_OPS:
                    continue
                targets = [s for s in plain.input_sources(loc, node, 0)
                           if s.loc is not None and s.node is not None and s.node.op in VARIABLE_OPS]
                if not targets:
                    untraced.append((loc, node))
                for target in targets:
                    writers.setdefault(target.loc, []).append((loc, node))  # type: ignore[arg-type]
            for loc, node in self.graph.all_nodes():
                if node.op in VARIABLE_OPS:
                    writers.setdefault(loc, []).extend(untraced)
            self._writers = writers
        return self._writers
