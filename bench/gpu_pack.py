"""Run directories prepared on a CPU, carried to a GPU machine in as few bytes as honesty allows.

`pack` keeps what the measure phase reads (the stage records, the ONNX artifacts, the samples' recorded
outputs, the manifests) and leaves out what it does not (the SavedModel and frozen graph: a GPU worker
without TensorFlow never opens them) and what is a pure function of a seed (the inspect stage's sample
inputs, the ImageNet models' evaluation images): those are regenerated on the GPU machine and checked
against the SHA-256 of the arrays made here. Identical files (the fp32 ONNX artifact of four variants)
travel once; ONNX files travel byte-shuffled (4 planes) and xz-compressed, which is lossless. `unpack`
rebuilds every file and checks every digest; a mismatch stops it.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

INDEX = "index.json"
SKIPPED_VARIANTS = ("tf-savedmodel", "tf-frozen", "tf-grappler", "tf-xla")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def shuffle_xz(data: bytes) -> bytes:
    pad = (-len(data)) % 4
    planes = np.frombuffer(data + b"\0" * pad, np.uint8).reshape(-1, 4).T
    parts = [lzma.compress(plane.tobytes(), preset=6) for plane in planes]
    header = len(data).to_bytes(8, "little") + b"".join(len(p).to_bytes(8, "little") for p in parts)
    return header + b"".join(parts)


def unshuffle_xz(packed: bytes) -> bytes:
    size = int.from_bytes(packed[:8], "little")
    lengths = [int.from_bytes(packed[8 + 8 * i:16 + 8 * i], "little") for i in range(4)]
    offset, planes = 40, []
    for length in lengths:
        planes.append(np.frombuffer(lzma.decompress(packed[offset:offset + length]), np.uint8))
        offset += length
    return np.stack(planes).T.copy().tobytes()[:size]


def _wanted(relative: str, regenerated: dict[str, Any]) -> bool:
    """<model>/model/ (the SavedModel) and the TensorFlow variants stay behind, and so do regenerated files."""
    parts = relative.split("/")
    if relative in regenerated or parts[1:2] == ["model"]:
        return False
    if "variants" in parts:
        return parts[parts.index("variants") + 1] not in SKIPPED_VARIANTS
    return True


def pack(root: Path, regenerated: dict[str, dict[str, Any]], out: Path) -> dict[str, Any]:
    """Tar `root`'s wanted files into `out`; `regenerated` maps a relative .npz path to {"recipe": ...,
    "digest": arrays_digest(...)} for the files the GPU machine makes again."""
    index: dict[str, Any] = {"files": {}, "blobs": {}, "regenerated": regenerated}
    blobs: dict[str, bytes] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if not _wanted(relative, regenerated):
            continue
        data = path.read_bytes()
        digest = sha256(data)
        index["files"][relative] = digest
        if digest not in blobs:
            blobs[digest] = shuffle_xz(data) if relative.endswith(".onnx") else data
            index["blobs"][digest] = {"shuffled": relative.endswith(".onnx"), "bytes": len(data)}
    with tarfile.open(out, "w") as archive:
        for name, data in [(INDEX, json.dumps(index, indent=1).encode()), *blobs.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return index


def unpack(archive_path: Path, root: Path, regenerate: Callable[[dict[str, Any]], dict[str, np.ndarray]]) -> int:
    """Rebuild the files under `root`; `regenerate(recipe)` remakes an .npz's arrays. Returns files written."""
    with tarfile.open(archive_path, "r") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(members[INDEX])
    written = 0
    for relative, digest in index["files"].items():
        blob = members[digest]
        data = unshuffle_xz(blob) if index["blobs"][digest]["shuffled"] else blob
        if sha256(data) != digest:
            raise SystemExit(f"{relative}: SHA-256 mismatch after unpacking")
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written += 1
    for relative, entry in index["regenerated"].items():
        arrays = regenerate(entry["recipe"])
        if arrays_digest(arrays) != entry["digest"]:
            raise SystemExit(f"{relative}: the regenerated arrays differ from the ones made on the CPU machine")
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(target, **arrays)  # type: ignore[arg-type]
        written += 1
    return written
