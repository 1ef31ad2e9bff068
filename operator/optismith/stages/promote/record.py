"""promotion.json: who may replace it, with which version number, and what stays after it changed.

Ordering: a promotion of an older generation of the same resource than the one promoted is refused,
checked before anything is uploaded and again at the switch, which is a compare-and-swap on
promotion.json (S3 If-Match / If-None-Match; a directory lock locally). Version numbers are
`offset + generation` for one resource (its uid), so concurrent promotions of different generations
write disjoint version directories and the newer generation always gets the higher number; a new
resource (or a run outside the operator) continues after the highest version kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from optismith.errors import StageError
from optismith.results import PromotedVersion, PromotionManifest
from optismith.runs import layout
from optismith.storage import Storage

COMMIT_ATTEMPTS = 8


@dataclass(frozen=True)
class Claim:
    """The resource generation that wants to promote."""

    name: str
    namespace: str | None
    uid: str | None
    generation: int | None


def read_current(destination: Storage) -> tuple[PromotionManifest | None, str | None]:
    """The current promotion and its compare-and-swap token; (None, None) when there is none."""
    found = destination.read_versioned(layout.PROMOTION)
    if found is None:
        return None, None
    data, token = found
    try:
        return PromotionManifest.model_validate_json(data), token
    except ValidationError:
        # An unreadable record (an older schema, a hand edit) orders nothing; it is replaced, by CAS still.
        return None, token


def _same_resource(current: PromotionManifest, claim: Claim) -> bool:
    return (current.name, current.namespace) == (claim.name, claim.namespace)


def refusal(current: PromotionManifest | None, claim: Claim, uri: str) -> str | None:
    """Why `claim` may not replace `current`, or None."""
    if current is None:
        return None
    if not _same_resource(current, claim):
        return (f"{uri} holds the promotion of {current.namespace or '-'}/{current.name}: give each resource its "
                "own promotion.uri")
    ordered = current.uid == claim.uid and current.generation is not None and claim.generation is not None
    if ordered and current.generation is not None and claim.generation is not None \
            and current.generation > claim.generation:
        return (f"generation {current.generation} is already promoted to {uri}; this run is of generation "
                f"{claim.generation}, which is older")
    return None


def version_for(current: PromotionManifest | None, claim: Claim) -> tuple[int, int]:
    """(version, offset) of the claim's promotion."""
    highest = max((v.version for v in current.retained), default=current.version) if current else 0
    if claim.generation is None:
        return highest + 1, highest + 1
    if current is not None and current.uid == claim.uid and current.generation is not None:
        return current.version_offset + claim.generation, current.version_offset
    return highest + claim.generation, highest


def retained(current: PromotionManifest | None, newest: PromotedVersion, keep: int) -> list[PromotedVersion]:
    """The newest `keep` versions once `newest` is promoted (newest first)."""
    earlier = [v for v in (current.retained if current else []) if v.version < newest.version]
    return [newest, *earlier][:keep]


def commit(destination: Storage, record: PromotionManifest, token: str | None, claim: Claim,
           keep: int) -> tuple[PromotionManifest | None, str]:
    """Switch promotion.json to `record`. (the record written, "") on success; (None, why) when a newer
    generation got there first. An older one that lands in between is overtaken: the retained list is
    recomputed and the swap retried."""
    for _ in range(COMMIT_ATTEMPTS):
        if destination.write_if(layout.PROMOTION, record.model_dump_json(indent=2).encode(), token):
            return record, ""
        current, token = read_current(destination)
        why = refusal(current, claim, destination.uri)
        if why:
            return None, why
        if current is not None and current.version >= record.version:
            raise StageError(f"another promotion (version {current.version}) landed at {destination.uri} while "
                             f"this one (version {record.version}) uploaded", where=destination.uri,
                             fix="the Job is retried; promote each resource to its own promotion.uri")
        newest = record.retained[0]
        record = record.model_copy(update={"retained": retained(current, newest, keep)})
    raise StageError(f"promotion.json at {destination.uri} kept changing: {COMMIT_ATTEMPTS} compare-and-swap "
                     "attempts failed", where=destination.uri, fix="retry; check nothing else rewrites promotion.json")


def _version_of(parts: list[str]) -> int | None:
    return int(parts[0]) if parts and parts[0].isdigit() else None


def stale_directories(destination: Storage, record: PromotionManifest) -> list[str]:
    """Version directories to delete after `record` was switched in: those not retained, and every older one
    under kserve/ (which holds the current version only). Newer ones are never touched: they belong to a
    promotion in flight that will sweep after its own switch."""
    keep = {v.version for v in record.retained}
    stale: set[str] = set()
    trees = [layout.triton_model(record.model_name), layout.triton_model(record.model_name, layout.KSERVE),
             f"{layout.TFSERVING}/{record.model_name}", layout.KSERVE]
    for tree in trees:
        for key in destination.list(tree + "/"):
            parts = key[len(tree) + 1:].split("/")
            version = _version_of(parts)
            if version is None or version >= record.version:
                continue
            if version not in keep or tree.startswith(layout.KSERVE):
                stale.add(f"{tree}/{version}")
    if record.servers.get(layout.KSERVE) and layout.TRITON not in record.servers:
        # The KServe prefix is TF Serving's layout now: a Triton model directory there is from before.
        stale.update(f"{layout.KSERVE}/{key.split('/')[1]}" for key in destination.list(layout.KSERVE + "/")
                     if not key.split("/")[1].isdigit())
    return sorted(stale)
