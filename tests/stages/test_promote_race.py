"""Concurrent promotions on a real S3 server (SeaweedFS, conditional writes): two promotions of
generations N and N+1 of one resource, started together, always leave N+1 promoted, whichever finishes
its upload first, and leave no files of the loser behind."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import optismith.stages.promote as promote_module
from optismith.results import StageRecord
from optismith.stages.promote import PromoteStage
from tests.fixtures.seaweedfs import SeaweedFS
from tests.stages.promotion_runs import sealed_run

pytestmark = [pytest.mark.s3, pytest.mark.slow]
ROUNDS = 6


def keys(s3_server: SeaweedFS, bucket: str, prefix: str) -> list[str]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for o in listed.get("Contents", []))


def test_concurrent_promotions_always_end_on_the_newer_generation(
    s3_bucket: str, s3_server: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"promoted/{uuid.uuid4().hex[:8]}"
    destination = f"s3://{s3_bucket}/{prefix}"
    read_current, upload = promote_module.read_current, promote_module._upload
    state: dict[str, Any] = {}

    def contended_read(store: Any) -> Any:
        found = read_current(store)
        state["barrier"].wait(timeout=30)  # both have read the same record before either uploads
        return found

    def slowed_upload(store: Any, placement: Any) -> None:
        if threading.current_thread().name == state["slow"]:
            time.sleep(0.4)  # this one commits second
        upload(store, placement)

    monkeypatch.setattr(promote_module, "read_current", contended_read)
    monkeypatch.setattr(promote_module, "_upload", slowed_upload)
    outcomes: list[tuple[int, dict[str, Any]]] = []
    for round_ in range(ROUNDS):
        older, newer = 2 * round_ + 1, 2 * round_ + 2
        # Alternate who finishes uploading first: the newer (the older then meets a newer record at the
        # switch) or the older (it lands first and the newer overtakes it); the last rounds race freely.
        state.update(barrier=threading.Barrier(2), slow={0: f"g{older}", 1: f"g{newer}"}.get(round_ % 3, ""))
        records: dict[int, StageRecord] = {}
        runs = {g: sealed_run(tmp_path / f"g{g}", destination, generation=g, winner="tf-savedmodel")
                for g in (older, newer)}

        def promote(generation: int, runs: dict[int, Any] = runs, records: dict[int, StageRecord] = records) -> None:
            records[generation] = PromoteStage().run(runs[generation])

        threads = [threading.Thread(target=promote, args=(g,), name=f"g{g}") for g in (older, newer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stored_record = s3_server.client().get_object(Bucket=s3_bucket, Key=f"{prefix}/promotion.json")
        record = json.loads(stored_record["Body"].read())
        assert record["generation"] == newer, (round_, record, {g: r.payload for g, r in records.items()})
        assert records[newer].payload["promoted"] is True
        outcomes.append((round_, records[older].payload))
        stored = keys(s3_server, s3_bucket, prefix)
        # The newer version is complete everywhere; the older one left nothing under kserve/ (current only).
        for version_dir in (f"tfserving/digits/{newer}", f"triton/digits/{newer}/model.savedmodel", f"kserve/{newer}"):
            assert {f"{version_dir}/saved_model.pb", f"{version_dir}/variables/variables.index"} <= set(stored)
        assert not [k for k in stored if k.startswith("kserve/") and not k.startswith(f"kserve/{newer}/")], stored
    # Both orders happened: the older one was refused at the switch, and it landed first and was overtaken.
    refused = [r for r, payload in outcomes if not payload["promoted"]]
    overtaken = [r for r, payload in outcomes if payload["promoted"]]
    assert refused and overtaken, outcomes
    assert all("already promoted" in payload["reason"] for r, payload in outcomes if r in refused)
