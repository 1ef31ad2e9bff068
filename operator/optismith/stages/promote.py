"""The promote stage: copy the winner to the stable `promotion.uri`, atomically for readers.

The artifact goes under a new content-addressed key (`artifacts/<sha256>/<name>`) first; only then is
`promotion.json` (one object, written atomically) switched to point at it. A reader that follows
promotion.json therefore always finds a complete artifact, and a failed or refused promotion leaves the
previous one in place. Artifacts of earlier promotions are kept: readers may still be using them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from optismith.errors import StageError
from optismith.results import Candidate, PromotionManifest, PromotionOutcome, RunManifest, Selection, StageRecord
from optismith.runs import layout
from optismith.runs.manifest import artifact_digest, artifact_files, sealed_mismatches
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.storage import Storage, open_storage


def _metrics(candidate: Candidate) -> dict[str, float | None]:
    return {
        "latency_p50_ms": candidate.latency_p50_ms, "latency_p99_ms": candidate.latency_p99_ms,
        "throughput_per_s": candidate.throughput_per_s, "speedup": candidate.speedup,
        "accuracy_drop": candidate.accuracy_drop,
        "size_bytes": float(candidate.size_bytes) if candidate.size_bytes is not None else None,
    }


def _not_promoted(reason: str) -> dict[str, Any]:
    return PromotionOutcome(promoted=False, reason=reason).model_dump(exclude_none=True)


def _upload(destination: Storage, key: str, path: Path) -> None:
    if path.is_dir():
        destination.upload_tree(key, path)
    else:
        destination.upload_file(key, path)


class PromoteStage(Stage):
    name = "promote"
    requires = ("select", "report")

    def run(self, ctx: StageContext) -> StageRecord:
        refusal = self._refusal(ctx)
        if isinstance(refusal, str):
            ctx.progress(f"not promoted: {refusal}")
            return new_record(ctx, "promote", message=f"not promoted: {refusal}; the previous promotion is "
                              "left untouched", payload=_not_promoted(refusal))
        selection, winner = refusal
        promotion = ctx.spec.promotion
        assert promotion is not None  # _refusal returned a reason otherwise
        variant = next((v for v in ctx.variants() if v.name == winner.variant), None)
        if variant is None or not variant.artifact:
            raise StageError(f"the winner {winner.variant} has no recorded artifact", where=ctx.store.uri,
                             fix="re-run the build stages and the selection")
        local = ctx.fetch(variant.artifact)
        files = artifact_files(local)
        run_manifest = RunManifest.model_validate_json(ctx.store.read_bytes(layout.MANIFEST))
        changed = sealed_mismatches(run_manifest, variant.artifact, files)
        if changed:
            reason = f"the winner's files differ from the run's manifest: {', '.join(changed[:5])}"
            return new_record(ctx, "promote", message=f"not promoted: {reason}",
                              payload=_not_promoted(reason))
        digest = artifact_digest(files)
        destination = open_storage(promotion.uri, ctx.spec.storage)
        artifact_key = layout.promoted_artifact(digest, Path(variant.artifact.rstrip("/")).name)
        ctx.progress(f"uploading {winner.variant} to {destination.key_uri(artifact_key)}")
        _upload(destination, artifact_key, local)
        metadata = ctx.manifest.metadata
        manifest = PromotionManifest(
            variant=winner.variant, target=winner.target, artifact=artifact_key, digest=f"sha256:{digest}",
            source_uri=ctx.spec.model.uri, run_uri=ctx.store.uri, name=metadata.name,
            namespace=metadata.namespace, generation=metadata.generation,
            promoted_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            metrics={**_metrics(winner), "batch_size": float(selection.batch_size)},
        )
        # The switch: readers see the old promotion.json or this one, never a partial state.
        destination.write_bytes(layout.PROMOTION, manifest.model_dump_json(indent=2).encode())
        payload = PromotionOutcome(
            promoted=True, uri=destination.uri, digest=f"sha256:{digest}", variant=winner.variant,
            target=winner.target, artifact=destination.key_uri(artifact_key),
            manifest=destination.key_uri(layout.PROMOTION),
        ).model_dump()
        return new_record(ctx, "promote", message=f"promoted {winner.variant} ({winner.target}) to "
                          f"{destination.uri} as {digest[:12]}", payload=payload)

    @staticmethod
    def _refusal(ctx: StageContext) -> str | tuple[Selection, Candidate]:
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
