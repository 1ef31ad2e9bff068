"""Bad and hostile models through the worker's command line (`optismith stage inspect`, what a prepare Job
runs): truncated and corrupt files, wrong formats, archives that climb out or explode, oversized models,
and a model that writes files. Each gets its own exit code and a message naming the problem and the fix,
and leaves nothing that looks like a complete run. With spec.security.allowOps, the file-writing model
is accepted: the refusal is a default, not a dead end."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from optismith.cli import main
from optismith.storage import open_storage
from tests.reliability.reliability_kit import CaseLedger

pytestmark = pytest.mark.tf

EXIT = {"InvalidModel": 3, "UnsafeModel": 8, "UnsafeArchive": 9}


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def copy_model(digits_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(digits_dir / "model", dest))


def tar_gz(source: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(source, arcname="model")
    return dest


def tar_with(dest: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(dest, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


def leaky_saved_model(dest: Path, target: Path) -> Path:
    """A SavedModel whose serving function writes a file: a program, not just weights."""
    import tensorflow as tf

    class Leaky(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            tf.io.write_file(str(target), tf.io.serialize_tensor(x))
            return {"y": x * 2.0}

    module = Leaky()
    tf.saved_model.save(module, str(dest), signatures={"serving_default": module.serve})
    return dest


# name -> (build the model under tmp and return (uri, spec overrides), expected reason, words in the message)
Case = tuple[Callable[[Path, Path], tuple[Path, dict[str, Any]]], str, list[str]]


def _truncated_pb(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    model = copy_model(digits, tmp / "model")
    truncate(model / "saved_model.pb")
    return model, {}


def _empty_pb(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    model = copy_model(digits, tmp / "model")
    (model / "saved_model.pb").write_bytes(b"")
    return model, {}


def _truncated_variables(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    model = copy_model(digits, tmp / "model")
    for data in (model / "variables").glob("variables.data-*"):
        truncate(data, 0.3)
    return model, {}


def _truncated_keras(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = Path(shutil.copy(digits / "model.keras", tmp / "model.keras"))
    truncate(target)
    return target, {}


def _zip_posing_as_keras(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp / "model.keras"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    return target, {}


def _truncated_tar_gz(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    archive = tar_gz(digits / "model", tmp / "model.tar.gz")
    truncate(archive, 0.6)
    return archive, {}


def _image_as_frozen_graph(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp / "model.pb"
    target.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2048))
    return target, {
        "model": {"format": "frozen-graph", "inputs": [{"name": "x", "shape": [-1, 8, 8, 1]}], "outputs": ["y"]}
    }


def _tflite_file(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp / "model.tflite"
    target.write_bytes(b"\x1c\x00\x00\x00TFL3" + os.urandom(512))
    return target, {}


def _tar_slip(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    evil = tarfile.TarInfo("model/../../../escaped.txt")
    evil.size = 4
    return tar_with(tmp / "model.tar.gz", [(evil, b"evil")]), {}


def _tar_symlink_out(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    link = tarfile.TarInfo("model/variables")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    return tar_with(tmp / "model.tar.gz", [(link, None)]), {}


def _zip_slip(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp / "model.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("../../escaped.txt", "evil")
    return target, {}


def _zip_bomb(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    target = tmp / "model.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/saved_model.pb", b"\0" * (64 << 20))  # 64 MiB of zeros: ~64 KiB packed
    return target, {"limits": {"maxExpandedSize": "8Mi"}}


def _too_many_entries(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    return tar_gz(digits / "model", tmp / "model.tar.gz"), {"limits": {"maxArchiveEntries": 2}}


def _oversized(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    return digits / "model", {"limits": {"maxModelSize": "64Ki"}}


def _local_symlink(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    model = copy_model(digits, tmp / "model")
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocab.txt").symlink_to("/proc/self/environ")
    return model, {}


def _tar_conflict(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    file = tarfile.TarInfo("model/saved_model.pb")
    file.size = 2
    below = tarfile.TarInfo("model/saved_model.pb/inner")
    below.size = 2
    return tar_with(tmp / "model.tar.gz", [(file, b"pb"), (below, b"pb")]), {}


def _writes_files(digits: Path, tmp: Path) -> tuple[Path, dict[str, Any]]:
    return leaky_saved_model(tmp / "leaky", tmp / "written.bin"), {}


CASES: dict[str, Case] = {
    "truncated saved_model.pb": (_truncated_pb, "InvalidModel", ["saved_model.pb"]),
    "empty saved_model.pb": (_empty_pb, "InvalidModel", ["saved_model.pb"]),
    "truncated variables": (_truncated_variables, "InvalidModel", ["cannot load the SavedModel"]),
    "truncated .keras": (_truncated_keras, "InvalidModel", ["keras"]),
    "zip posing as .keras": (_zip_posing_as_keras, "InvalidModel", ["keras"]),
    "truncated .tar.gz": (_truncated_tar_gz, "InvalidModel", ["corrupt or truncated"]),
    "image posing as a frozen graph": (_image_as_frozen_graph, "InvalidModel", ["GraphDef"]),
    "TFLite file (wrong format)": (_tflite_file, "InvalidModel", ["format"]),
    "tar slip": (_tar_slip, "UnsafeArchive", ["escaped.txt"]),
    "symlink out of a tar": (_tar_symlink_out, "UnsafeArchive", ["link"]),
    "zip slip": (_zip_slip, "UnsafeArchive", ["escaped.txt"]),
    "zip bomb": (_zip_bomb, "UnsafeArchive", ["maxExpandedSize"]),
    "too many archive entries": (_too_many_entries, "UnsafeArchive", ["maxArchiveEntries"]),
    "model over maxModelSize": (_oversized, "InvalidModel", ["maxModelSize"]),
    "symlink in a local model directory": (_local_symlink, "UnsafeArchive", ["symbolic link"]),
    "a file, then a file under it, in a tar": (_tar_conflict, "UnsafeArchive", ["sits under the file"]),
    "model that writes files": (_writes_files, "UnsafeModel", ["WriteFile", "security.allowOps"]),
}


def write_manifest(path: Path, model: Path, run_dir: Path, overrides: dict[str, Any]) -> Path:
    spec: dict[str, Any] = {
        "model": {"uri": str(model)},
        "variants": ["tf-savedmodel"],
        "output": {"uri": str(run_dir.parent)},
    }
    for key, value in overrides.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    document = {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "bad", "namespace": "ml"},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def inspect(manifest: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`optismith stage inspect -f … --run-uri …` in this process (TensorFlow is imported once)."""
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "stage",
                "inspect",
                "-f",
                str(manifest),
                "--run-uri",
                str(run_dir),
                "--workdir",
                str(run_dir.parent / "work"),
            ]
        )
    return int(exited.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_is_refused_with_its_own_exit_code_and_nothing_looks_complete(
    case: str, digits_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ledger: CaseLedger
) -> None:
    build, reason, words = CASES[case]
    sandbox = tmp_path / "sandbox" / "inner" / "deeper"
    sandbox.mkdir(parents=True)
    model, overrides = build(digits_dir, sandbox)
    run_dir = tmp_path / "runs" / "gen-1"
    ledger.bad_input(f"bad models: {'hostile' if reason.startswith('Unsafe') else 'corrupt or wrong'}")
    code, stderr = inspect(write_manifest(tmp_path / "m.yaml", model, run_dir, overrides), run_dir, capsys)
    assert code == EXIT[reason], stderr
    assert f"error [{reason}]" in stderr, stderr
    assert "Fix:" in stderr
    for word in words:
        assert word in stderr, (word, stderr)
    assert "Traceback" not in stderr
    record = open_storage(str(run_dir)).read_bytes("stages/inspect.json").decode()
    assert '"status": "failed"' in record and reason in record
    assert ledger.check_run(open_storage(str(run_dir))) == "incomplete"
    assert not list(tmp_path.rglob("escaped.txt")), "an archive wrote outside its directory"


def test_file_writing_model_runs_when_its_op_is_allowed(
    digits_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = leaky_saved_model(tmp_path / "leaky", tmp_path / "written.bin")
    run_dir = tmp_path / "runs" / "gen-1"
    manifest = write_manifest(tmp_path / "m.yaml", model, run_dir, {"security": {"allowOps": ["WriteFile"]}})
    code, stderr = inspect(manifest, run_dir, capsys)
    assert code == 0, stderr
    assert '"status": "succeeded"' in open_storage(str(run_dir)).read_bytes("stages/inspect.json").decode()
