"""results.json: every stage record of the run, assembled into one RunResults."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from pydantic import ValidationError

from optismith.errors import StageError
from optismith.results import Accuracy, RunResults, Selection, SourceInfo, StageRecord, VariantBenchmark
from optismith.runs import layout
from optismith.runs.stage import StageContext
from optismith.spec import ModelOptimizationSpec
from optismith.storage import Storage


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spec_digest(spec: ModelOptimizationSpec) -> str:
    """sha256 of the spec as canonical JSON (camelCase keys, sorted, no whitespace)."""
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def stage_records(store: Storage) -> list[StageRecord]:
    """Every stage record in the run directory, in the order the stages started (targets alphabetically)."""
    records = []
    for key in store.list(layout.STAGES_PREFIX):
        if not key.endswith(".json"):
            continue
        try:
            records.append(StageRecord.model_validate_json(store.read_bytes(key)))
        except ValidationError as error:
            raise StageError(f"{key} is not a valid stage record: {error.errors()[0]['msg']}",
                             where=store.key_uri(key), fix="re-run the stage that wrote it") from None
    return sorted(records, key=lambda r: (r.started_at, r.target or ""))


def assemble_results(ctx: StageContext) -> RunResults:
    # The report's own record is written once it returns; what is stored now is a placeholder or an old attempt's.
    records = [r for r in stage_records(ctx.store) if r.stage != "report"]
    latest = {(r.stage, r.target): r for r in records}
    benchmarks: list[VariantBenchmark] = []
    accuracy: list[Accuracy] = []
    environment: dict[str, object] = {}
    for record in records:
        if record.stage == "benchmark" and record.status == "succeeded":
            benchmarks.extend(record.benchmarks)
            environment[record.target or "local"] = record.payload.get("environment", {})
        elif record.stage == "evaluate" and record.status == "succeeded":
            accuracy.extend(record.accuracy)
    inspect = latest.get(("inspect", None))
    source = None
    if inspect is not None and isinstance(inspect.payload.get("source"), dict):
        source = SourceInfo.model_validate(inspect.payload["source"])
    quantize = latest.get(("quantize", None))
    calibration: dict[str, object] = {}
    if quantize is not None:
        found = quantize.payload.get("calibration", quantize.payload)
        calibration = dict(found) if isinstance(found, dict) else {}
    select = latest.get(("select", None))
    selection = None
    if select is not None and select.status == "succeeded" and "selection" in select.payload:
        selection = Selection.model_validate(select.payload["selection"])
    metadata = ctx.manifest.metadata
    started = [r.started_at for r in records if r.started_at]
    return RunResults(
        name=metadata.name, namespace=metadata.namespace, generation=metadata.generation,
        spec_digest=spec_digest(ctx.spec), started_at=min(started) if started else _now(), finished_at=_now(),
        environment=environment, source=source, calibration=calibration, stages=records,
        variants=ctx.variants(), benchmarks=benchmarks, accuracy=accuracy, selection=selection,
        isolation={record.label: record.isolation for record in records if record.isolation is not None},
    )
