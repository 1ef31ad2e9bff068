"""Run the prepare and build stages on a zoo model and read, per variant, what the build stages decided.

A zoo test asserts these verdicts by name, so a regression in one converter shows up as that variant's
status changing, with the converter's reason in the assertion message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.results import StageRecord, VariantRecord
from tests.stages import tf_sources


@dataclass(frozen=True)
class Verdicts:
    records: dict[str, VariantRecord]

    def status(self, variant: str) -> str:
        return self.records[variant].status

    def built(self) -> set[str]:
        return {name for name, record in self.records.items() if record.status == "built"}

    def explain(self) -> str:
        """Every variant's status and reason, for assertion messages."""
        return "\n".join(f"  {name}: {r.status} {r.reason}".rstrip() for name, r in self.records.items())


def build_variants(source: Path, tmp_path: Path, variants: list[str], **spec: Any) -> Verdicts:
    """Inspect, freeze and optimize `source`, then run every stage that builds one of `variants`."""
    from optismith.pipeline.registry import get_stage

    wanted = list(dict.fromkeys(["tf-savedmodel", "tf-frozen", *variants]))
    ctx = tf_sources.context(source, tmp_path, variants=wanted, **spec)
    records: dict[str, StageRecord] = tf_sources.prepare(ctx)
    for stage in catalog.building_stages():
        if stage in records or not catalog.built_by(stage, wanted):
            continue
        records[stage] = tf_sources.run(ctx, get_stage(stage))
    found = {v.name: v for record in records.values() for v in record.variants}
    return Verdicts({name: found[name] for name in wanted if name in found})
