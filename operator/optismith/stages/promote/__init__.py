"""The promote stage: publish the winner at `promotion.uri` in the layouts servers load as they are.

Checked first: the run's sealed manifest must verify (every file as sealed), the promotion URI must not
overlap the model, the output root or a run directory, and no newer generation may be promoted already.
Then the new version is uploaded into version directories of its own (serving.py), and only then is
`promotion.json` switched to it by compare-and-swap (record.py): a reader that follows promotion.json
always finds a complete version, a refused or failed promotion leaves the previous one in place, and two
concurrent promotions of one resource end on the newer generation. Versions beyond
`promotion.keepVersions` are deleted after the switch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optismith.errors import IncompleteRunError, StageError
from optismith.results import (
    Candidate,
    PromotedVersion,
    PromotionManifest,
    PromotionOutcome,
    Selection,
    SourceInfo,
    StageRecord,
)
from optismith.runs import layout
from optismith.runs.manifest import artifact_digest, artifact_files, sealed_mismatches, verify_manifest
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.spec.manifest import RUN_DIRECTORY_PATTERN
from optismith.stages.promote import serving
from optismith.stages.promote.record import (
    Claim,
    commit,
    read_current,
    refusal,
    retained,
    stale_directories,
    version_for,
)
from optismith.storage import Storage, open_storage
from optismith.storage.local import LocalStorage


def _metrics(candidate: Candidate, batch_size: int) -> dict[str, float | None]:
    return {
        "latency_p50_ms": candidate.latency_p50_ms, "latency_p99_ms": candidate.latency_p99_ms,
        "throughput_per_s": candidate.throughput_per_s, "speedup": candidate.speedup,
        "accuracy_drop": candidate.accuracy_drop,
        "size_bytes": float(candidate.size_bytes) if candidate.size_bytes is not None else None,
        "batch_size": float(batch_size),
    }


def _runtime_settings(ctx: StageContext, winner: Candidate, batch_size: int) -> dict[str, Any]:
    """The settings the winner's session ran with in its measured config at the selection batch size."""
    if not ctx.has_record("benchmark", winner.target):
        return {}
    bench = next((b for b in ctx.record("benchmark", winner.target).benchmarks if b.variant == winner.variant), None)
    config = bench.best_by_batch.get(str(batch_size)) if bench is not None else None
    return dict(config.runtime_settings) if config is not None else {}


def _not_promoted(ctx: StageContext, reason: str) -> StageRecord:
    ctx.progress(f"not promoted: {reason}")
    return new_record(ctx, "promote", message=f"not promoted: {reason}; the previous promotion is left untouched",
                      payload=PromotionOutcome(promoted=False, reason=reason).model_dump(exclude_none=True))


def _as_directory(uri: str) -> str:
    """A URI compared as a directory: local paths resolved (file:// stripped), one trailing '/'."""
    if not uri.startswith("s3://"):
        uri = str(Path(uri.removeprefix("file://")).expanduser().resolve())
    return uri.rstrip("/") + "/"


def overlap(ctx: StageContext, destination: Storage) -> str | None:
    """Why the promotion URI may not be written: it overlaps the model, the output root or a run directory.
    The spec refuses the plain cases; here paths are resolved, and the stores themselves are asked."""
    target = _as_directory(destination.uri)
    for what, uri in (("model.uri", ctx.spec.model.uri), ("output.uri", ctx.spec.output.uri),
                      ("this run's directory", ctx.store.uri)):
        other = _as_directory(uri)
        if target.startswith(other) or other.startswith(target):
            return f"promotion.uri {destination.uri} overlaps {what} {uri}"
    if re.search(RUN_DIRECTORY_PATTERN, destination.uri):
        return f"promotion.uri {destination.uri} names a run directory"
    # Another resource's run directory: a sealed run leaves manifest.json and stages/ at its root.
    if destination.exists(layout.MANIFEST) or destination.is_prefix(layout.STAGES_PREFIX.rstrip("/")):
        return f"promotion.uri {destination.uri} holds a run directory (manifest.json or stages/)"
    return None


@contextlib.contextmanager
def _serialized(destination: Storage) -> Iterator[None]:
    """Locally a directory lock makes a whole promotion atomic; S3 relies on the compare-and-swap."""
    if isinstance(destination, LocalStorage):
        with destination.locked(layout.PROMOTION):
            yield
    else:
        yield


def _upload(destination: Storage, placement: serving.Placement) -> None:
    if placement.source.is_dir():
        destination.upload_tree(placement.key, placement.source)
    else:
        destination.upload_file(placement.key, placement.source)


def _delete(destination: Storage, keys: list[str]) -> None:
    for key in keys:
        destination.delete(key)


def _signature(ctx: StageContext) -> Any:
    if not ctx.has_record("inspect"):
        return None
    source = ctx.record("inspect").payload.get("source")
    if not isinstance(source, dict):
        return None
    info = SourceInfo.model_validate(source)
    return info.inputs, info.outputs


class PromoteStage(Stage):
    name = "promote"
    requires = ("select", "report")

    def run(self, ctx: StageContext) -> StageRecord:
        chosen = self._winner(ctx)
        if isinstance(chosen, str):
            return _not_promoted(ctx, chosen)
        selection, winner = chosen
        promotion = ctx.spec.promotion
        assert promotion is not None  # _winner returned a reason otherwise
        try:
            run_manifest = verify_manifest(ctx.store)
        except IncompleteRunError as error:
            return _not_promoted(ctx, f"the run does not verify against its manifest: {error.message}")
        variant = next((v for v in ctx.variants() if v.name == winner.variant), None)
        if variant is None or not variant.artifact:
            raise StageError(f"the winner {winner.variant} has no recorded artifact", where=ctx.store.uri,
                             fix="re-run the build stages and the selection")
        destination = open_storage(promotion.uri, ctx.spec.storage)
        why = overlap(ctx, destination)
        if why:
            return _not_promoted(ctx, why)
        local = ctx.fetch(variant.artifact)
        files = artifact_files(local)
        changed = sealed_mismatches(run_manifest, variant.artifact, files)
        if changed:
            return _not_promoted(ctx, f"the winner's files differ from the run's manifest: {', '.join(changed[:5])}")
        digest = f"sha256:{artifact_digest(files)}"
        metadata = ctx.manifest.metadata
        claim = Claim(metadata.name, metadata.namespace, metadata.uid, metadata.generation)
        model = promotion.model_name or metadata.name
        with _serialized(destination):
            current, token = read_current(destination)
            why = refusal(current, claim, destination.uri)
            if why:
                return _not_promoted(ctx, why)
            version, offset = version_for(current, claim)
            fmt = serving.format_of(variant.runtime)
            plan = serving.plan(fmt, model, version, local, signature=_signature(ctx))
            ctx.progress(f"uploading {winner.variant} as version {version} to {destination.uri}")
            for placement in plan.uploads:
                _upload(destination, placement)
            for key, text in plan.configs.items():
                destination.write_bytes(key, text)
            newest = PromotedVersion(version=version, generation=claim.generation, digest=digest, format=fmt)
            record = PromotionManifest(
                version=version, variant=winner.variant, target=winner.target, runtime=variant.runtime, format=fmt,
                model_name=model, artifact=plan.artifact, digest=digest, servers=plan.servers,
                retained=retained(current, newest, promotion.keep_versions), version_offset=offset,
                source_uri=ctx.spec.model.uri, run_uri=ctx.store.uri, name=metadata.name,
                namespace=metadata.namespace, uid=metadata.uid, generation=metadata.generation,
                promoted_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                metrics=_metrics(winner, selection.batch_size),
                runtime_settings=_runtime_settings(ctx, winner, selection.batch_size),
            )
            # The switch: readers see the old promotion.json or this one, never a partial state.
            written, why = commit(destination, record, token, claim, promotion.keep_versions)
            if written is None:
                _delete(destination, plan.version_dirs)  # ours, never referenced: a newer one won
                return _not_promoted(ctx, why)
            _delete(destination, stale_directories(destination, written))
        payload = PromotionOutcome(
            promoted=True, uri=destination.uri, digest=digest, variant=winner.variant, target=winner.target,
            artifact=destination.key_uri(plan.artifact), manifest=destination.key_uri(layout.PROMOTION),
            version=version, runtime=variant.runtime, format=fmt,
            storage_uri=destination.key_uri(layout.KSERVE),
        ).model_dump()
        return new_record(ctx, "promote", message=f"promoted {winner.variant} ({winner.target}) to "
                          f"{destination.uri} as version {version} ({digest[7:19]})", payload=payload)

    @staticmethod
    def _winner(ctx: StageContext) -> str | tuple[Selection, Candidate]:
        """Why nothing may be promoted, or the selection and its passing winner."""
        if ctx.spec.promotion is None:
            return "spec.promotion is not set"
        if not ctx.has_record("select"):
            return "the select stage has not run"
        record = ctx.record("select")
        if record.status != "succeeded" or "selection" not in record.payload:
            return f"the select stage did not succeed: {record.message}"
        selection = Selection.model_validate(record.payload["selection"])
        if selection.outcome != "selected" or selection.winner is None:
            return selection.message or "no variant passed the gates"
        winner = next((c for c in selection.candidates
                       if c.variant == selection.winner and c.target == selection.winner_target), None)
        if winner is None or not winner.passed:
            return f"the selected {selection.winner} did not pass the gates"
        if not ctx.store.exists(layout.MANIFEST):
            return "the run is incomplete (no manifest.json): only sealed runs are promoted"
        return selection, winner
