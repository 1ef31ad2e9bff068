"""The io.json sidecar: written by the models package, read by the tf-graphdef runtime."""

from __future__ import annotations

import json
from pathlib import Path

from optismith.graphio import GraphIO, TensorIO, node_name, read_io, signature_key, tensor_name, write_io
from optismith.runtimes.tf import read_graph_io


def test_models_writer_and_runtime_reader_agree(tmp_path: Path) -> None:
    io = GraphIO(
        inputs=(TensorIO("b", "in_b:0", "int32", (None, 3)), TensorIO("a", "in_a:0", "float32", (None, 8, 8, 1))),
        outputs=(TensorIO("probs", "Identity:0", "float32", (None, 10)),),
    )
    write_io(tmp_path, io)
    document = json.loads((tmp_path / "io.json").read_text())
    assert document["inputs"][1] == {"name": "a", "tensor": "in_a:0", "dtype": "float32", "shape": [None, 8, 8, 1]}

    inputs, outputs = read_graph_io(tmp_path)
    assert [(spec.name, tensor, spec.dtype, spec.shape) for spec, tensor in inputs] == [
        ("a", "in_a:0", "float32", (None, 8, 8, 1)),
        ("b", "in_b:0", "int32", (None, 3)),
    ]
    assert outputs[0][0].shape == (None, 10) and outputs[0][1] == "Identity:0"
    assert [t.name for t in read_io(tmp_path).inputs] == ["a", "b"], "sorted by name, like the runtime"


def test_minus_one_is_read_as_a_dynamic_dimension(tmp_path: Path) -> None:
    (tmp_path / "io.json").write_text(
        json.dumps(
            {
                "inputs": [{"name": "x", "tensor": "x:0", "dtype": "float32", "shape": [-1, 4]}],
                "outputs": [{"name": "y", "tensor": "y:0", "dtype": "float32", "shape": [-1]}],
            }
        )
    )
    assert read_io(tmp_path).inputs[0].shape == (None, 4)
    assert read_graph_io(tmp_path)[0][0][0].shape == (None, 4)


def test_names() -> None:
    assert tensor_name("probs") == "probs:0" and tensor_name("split:1") == "split:1"
    assert node_name("probs:0") == "probs" and node_name("^init") == "init"
    assert signature_key("scope/logits:0") == "scope_logits"
    assert signature_key("split:1") == "split_1"
