"""Sealing a run and checking the seal: manifest.json lists the sha256 and size of every file of the run
directory, and is written last, so a run directory without a valid manifest is not complete.

Also the digests of artifacts: a file's sha256, or a directory's tree digest (promotion addresses
artifacts by it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from optismith.errors import IncompleteRunError, StageError
from optismith.results import ManifestEntry, RunManifest
from optismith.runs import layout
from optismith.storage import Storage
from optismith.storage.base import sha256_file
from optismith.storage.local import LocalStorage


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over sorted '<relative path> <file sha256>' lines: equal trees give equal digests,
    whatever order their files were listed or uploaded in."""
    digest = hashlib.sha256()
    for relative, file_digest in sorted(entries):
        digest.update(f"{relative} {file_digest}\n".encode())
    return digest.hexdigest()


def stored_digest(store: Storage, key: str) -> tuple[str, int]:
    """(sha256, size) of one stored object; remote objects are streamed through a temporary file."""
    if isinstance(store, LocalStorage):
        path = store.local_path(key)
        return sha256_file(path), path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="optismith-digest-") as scratch:
        local = Path(scratch) / "object"
        store.download_file(key, local)
        return sha256_file(local), local.stat().st_size


def write_manifest(store: Storage) -> RunManifest:
    """Digest every file of the run directory (except the manifest, and the records written after it: what is
    stored there now is a placeholder or an earlier attempt's) and write manifest.json."""
    entries = []
    for key in store.list():
        if key == layout.MANIFEST or key in layout.WRITTEN_AFTER_MANIFEST:
            continue
        digest, size = stored_digest(store, key)
        entries.append(ManifestEntry(path=key, sha256=digest, size_bytes=size))
    results = next((e.sha256 for e in entries if e.path == layout.RESULTS), None)
    if results is None:
        raise StageError("results.json is missing, so the run cannot be sealed", where=store.uri,
                         fix="run the report stage")
    manifest = RunManifest(complete=True, created_at=_now(), results_sha256=results, files=entries)
    store.write_bytes(layout.MANIFEST, manifest.model_dump_json(indent=2).encode())
    return manifest


def verify_manifest(store: Storage) -> RunManifest:
    """The run's manifest, after checking every listed file's digest and size and that no other files
    appeared. Raises IncompleteRunError naming what is wrong."""
    where = store.key_uri(layout.MANIFEST)
    if not store.exists(layout.MANIFEST):
        raise IncompleteRunError("the run has no manifest.json: it has not finished, or it failed",
                                 where=where, fix="wait for the run to finish, or re-run its report stage")
    try:
        manifest = RunManifest.model_validate_json(store.read_bytes(layout.MANIFEST))
    except ValidationError as error:
        raise IncompleteRunError(f"manifest.json is not a valid run manifest: {error.errors()[0]['msg']}",
                                 where=where, fix="re-run the report stage") from None
    problems: list[str] = []
    if not manifest.complete:
        problems.append("the manifest says the run is incomplete")
    listed = {entry.path for entry in manifest.files}
    for entry in manifest.files:
        if not store.exists(entry.path):
            problems.append(f"{entry.path} is missing")
            continue
        digest, size = stored_digest(store, entry.path)
        if digest != entry.sha256 or size != entry.size_bytes:
            problems.append(f"{entry.path} changed (sha256 {digest[:12]} != {entry.sha256[:12]})")
    results = next((e.sha256 for e in manifest.files if e.path == layout.RESULTS), None)
    if results != manifest.results_sha256:
        problems.append("results.json does not match the manifest's results_sha256")
    extra = sorted(set(store.list()) - listed - {layout.MANIFEST} - layout.WRITTEN_AFTER_MANIFEST)
    problems.extend(f"{key} is not covered by the manifest" for key in extra)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IncompleteRunError(f"the run directory does not match its manifest: {shown}", where=where,
                                 fix="do not edit run directories; re-run the optimization for trustworthy results")
    return manifest


def artifact_files(path: Path) -> dict[str, str]:
    """Relative path ('' for a single file) -> sha256 of each file of an artifact."""
    if path.is_file():
        return {"": sha256_file(path)}
    return {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


def artifact_digest(files: dict[str, str]) -> str:
    """A file's sha256, or the tree digest of a directory's files."""
    if set(files) == {""}:
        return files[""]
    return tree_digest(files.items())


def sealed_mismatches(run_manifest: RunManifest, artifact_key: str, files: dict[str, str]) -> list[str]:
    """Files of the fetched artifact whose digest differs from what the run sealed in its manifest."""
    sealed = {entry.path: entry.sha256 for entry in run_manifest.files}
    problems = []
    for relative, digest in files.items():
        key = f"{artifact_key.rstrip('/')}/{relative}" if relative else artifact_key
        if sealed.get(key) != digest:
            problems.append(key)
    return problems
