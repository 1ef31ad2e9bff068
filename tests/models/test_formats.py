"""Recognising model formats from files, and clear errors for what is not a model."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from optismith.errors import ModelFormatError
from optismith.models.formats import checkpoint_prefix, detect_format

pytestmark = pytest.mark.tf


def _graph_def_bytes() -> bytes:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    node = graph_def.node.add()
    node.name, node.op = "x", "Placeholder"
    return bytes(graph_def.SerializeToString())


def _meta_graph_bytes() -> bytes:
    import tensorflow as tf

    meta = tf.compat.v1.MetaGraphDef()
    meta.graph_def.ParseFromString(_graph_def_bytes())
    return bytes(meta.SerializeToString())


def _saved_model_bytes() -> bytes:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.meta_graphs.add().graph_def.ParseFromString(_graph_def_bytes())
    return bytes(proto.SerializeToString())


def _keras_file(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    return path


def _checkpoint(directory: Path, stem: str = "model") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.meta").write_bytes(_meta_graph_bytes())
    (directory / f"{stem}.index").write_bytes(b"")
    (directory / f"{stem}.data-00000-of-00001").write_bytes(b"")
    return directory / f"{stem}.meta"


def test_saved_model_directory(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(_saved_model_bytes())
    assert detect_format(tmp_path) == ("savedmodel", tmp_path)
    assert detect_format(tmp_path / "saved_model.pb") == ("savedmodel", tmp_path)


def test_pb_files_among_a_saved_model_assets_are_not_models(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(_saved_model_bytes())
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "vocabulary.pb").write_bytes(b"not a graph")
    assert detect_format(tmp_path) == ("savedmodel", tmp_path)


def test_saved_model_one_level_down(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(_saved_model_bytes())
    assert detect_format(tmp_path) == ("savedmodel", tmp_path / "1")


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.hdf5"])
def test_keras_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".keras"):
        _keras_file(path)
    else:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert detect_format(path) == ("keras", path)
    assert detect_format(tmp_path, "keras") == ("keras", path)


def test_frozen_graph_and_checkpoint(tmp_path: Path) -> None:
    pb = tmp_path / "graph" / "frozen.pb"
    pb.parent.mkdir()
    pb.write_bytes(_graph_def_bytes())
    assert detect_format(pb.parent) == ("frozen-graph", pb)
    meta = _checkpoint(tmp_path / "ckpt")
    assert detect_format(tmp_path / "ckpt") == ("checkpoint", meta)
    assert checkpoint_prefix(meta) == str(tmp_path / "ckpt" / "model")


def test_checkpoint_prefix_from_the_checkpoint_file(tmp_path: Path) -> None:
    meta = _checkpoint(tmp_path, "model.ckpt-100")
    (tmp_path / "model.ckpt-100.index").rename(tmp_path / "model.ckpt-200.index")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-200"\n')
    assert checkpoint_prefix(meta) == str(tmp_path / "model.ckpt-200")


def test_checkpoint_without_data_is_refused(tmp_path: Path) -> None:
    meta = tmp_path / "model.meta"
    meta.write_bytes(_meta_graph_bytes())
    with pytest.raises(ModelFormatError, match=r"checkpoint data .* is missing") as caught:
        detect_format(meta)
    assert ".index" in caught.value.fix


def test_unknown_format_names_what_was_found_and_what_is_supported(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    (tmp_path / "README.txt").write_text("hi")
    with pytest.raises(ModelFormatError) as caught:
        detect_format(tmp_path)
    assert "README.txt" in caught.value.what and "weights.bin" in caught.value.what
    assert "savedmodel" in caught.value.fix and ".keras" in caught.value.fix and ".meta" in caught.value.fix
    (tmp_path / "model.onnx").write_bytes(b"o")
    with pytest.raises(ModelFormatError, match=r"unknown model format: 'model\.onnx'"):
        detect_format(tmp_path / "model.onnx")


def test_corrupt_protobufs(tmp_path: Path) -> None:
    garbage = b"\xff\xfe definitely not a protobuf \x00\x01" * 8
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(garbage)
    with pytest.raises(ModelFormatError, match="not a valid SavedModel"):
        detect_format(tmp_path / "sm")
    (tmp_path / "frozen.pb").write_bytes(garbage)
    with pytest.raises(ModelFormatError, match="not a valid GraphDef") as caught:
        detect_format(tmp_path / "frozen.pb")
    assert "write_graph" in caught.value.fix
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="no nodes"):
        detect_format(tmp_path / "empty.pb")


def test_corrupt_keras_files(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFormatError, match=r"not a valid \.keras file"):
        detect_format(tmp_path / "m.keras")
    (tmp_path / "m.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFormatError, match=r"not a valid \.h5 file"):
        detect_format(tmp_path / "m.h5")


def test_declared_format_must_match_the_files(tmp_path: Path) -> None:
    path = _keras_file(tmp_path / "m.keras")
    with pytest.raises(ModelFormatError, match=r"spec\.model\.format is 'savedmodel' but the files are a keras"):
        detect_format(path, "savedmodel")
    with pytest.raises(ModelFormatError, match="'frozen-graph' but the files are a keras"):
        detect_format(tmp_path, "frozen-graph")


def test_several_models_need_a_choice(tmp_path: Path) -> None:
    _keras_file(tmp_path / "a.keras")
    (tmp_path / "b.pb").write_bytes(_graph_def_bytes())
    with pytest.raises(ModelFormatError, match="several models") as caught:
        detect_format(tmp_path)
    assert "a.keras (keras)" in caught.value.what and "spec.model.format" in caught.value.fix
    assert detect_format(tmp_path, "frozen-graph") == ("frozen-graph", tmp_path / "b.pb")
