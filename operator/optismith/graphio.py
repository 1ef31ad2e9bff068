"""The inputs and outputs of a frozen graph, and the `io.json` sidecar that carries them.

A GraphDef has no signature, so the freeze and optimize stages write one next to each `.pb`:
    {"inputs": [{"name", "tensor", "dtype", "shape"}], "outputs": [...]}
`name` is the signature key (what callers feed by), `tensor` the graph tensor ("image:0"),
`shape` uses null for dynamic dimensions. Inputs and outputs are sorted by name, the order the
runtimes feed and return arrays in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IO_FILE = "io.json"

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class TensorIO:
    name: str
    tensor: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tensor": self.tensor, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorIO:
        shape = tuple(None if dim is None or int(dim) < 0 else int(dim) for dim in data["shape"])
        return cls(name=str(data["name"]), tensor=str(data["tensor"]), dtype=str(data["dtype"]), shape=shape)


@dataclass(frozen=True)
class GraphIO:
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GraphIO:
        return cls(
            inputs=tuple(sorted((TensorIO.from_json(t) for t in data["inputs"]), key=lambda t: t.name)),
            outputs=tuple(sorted((TensorIO.from_json(t) for t in data["outputs"]), key=lambda t: t.name)),
        )

    @property
    def input_nodes(self) -> list[str]:
        return [node_name(t.tensor) for t in self.inputs]

    @property
    def output_nodes(self) -> list[str]:
        return [node_name(t.tensor) for t in self.outputs]


def write_io(directory: Path, io: GraphIO) -> Path:
    path = directory / IO_FILE
    path.write_text(json.dumps(io.to_json(), indent=2, sort_keys=True), encoding="utf-8")
    return path


def read_io(directory: Path) -> GraphIO:
    return GraphIO.from_json(json.loads((directory / IO_FILE).read_text(encoding="utf-8")))


def tensor_name(name: str) -> str:
    """'probs' -> 'probs:0'; names that already carry an output index are kept."""
    return name if re.search(r":\d+$", name) else f"{name}:0"


def node_name(name: str) -> str:
    """'probs:0' / '^probs' -> 'probs'."""
    return re.sub(r":\d+$", "", name.lstrip("^"))


def signature_key(name: str) -> str:
    """A signature key for a graph tensor: 'scope/logits:0' -> 'scope_logits', 'split:1' -> 'split_1'."""
    match = re.search(r":(\d+)$", name)
    base = node_name(name)
    if match and match.group(1) != "0":
        base = f"{base}_{match.group(1)}"
    return _UNSAFE_KEY_CHARS.sub("_", base)
