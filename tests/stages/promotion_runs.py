"""Sealed runs whose select stage chose a winner, for the promotion tests: artifacts are stand-ins (the
promote stage copies bytes, it never loads them), under the names and runtimes of real variants."""

from __future__ import annotations

from pathlib import Path

from optismith.results import Candidate, Selection, StageRecord, VariantRecord
from optismith.runs.layout import stage_record
from optismith.runs.manifest import write_manifest
from optismith.runs.stage import StageContext
from optismith.spec import ModelOptimization
from optismith.storage.local import LocalStorage

# variant -> (runtime, {relative file: bytes}) ('' names a single-file artifact)
ARTIFACTS: dict[str, tuple[str, str, dict[str, bytes]]] = {
    "tflite-fp32": ("tflite", "model.tflite", {"": b"TFL3 stand-in"}),
    "onnx-fp32": ("onnxruntime", "model.onnx", {"": b"onnx stand-in"}),
    "tf-savedmodel": ("tf-savedmodel", "saved_model",
                      {"saved_model.pb": b"graph", "variables/variables.index": b"index"}),
    "tf-frozen": ("tf-graphdef", "frozen.pb", {"": b"graphdef stand-in"}),
}


def candidate(variant: str, passed: bool = True) -> Candidate:
    return Candidate(variant=variant, target="cpu", objective_value=1.0, latency_p50_ms=1.0, latency_p99_ms=1.5,
                     throughput_per_s=1000.0, size_bytes=123, accuracy_drop=0.001, speedup=2.5, passed=passed,
                     reasons=[] if passed else ["accuracy drop 5.00% exceeds maxAccuracyDrop 1%"])


def sealed_run(root: Path, promotion: str | None, *, winner: str | None = "tflite-fp32", generation: int = 3,
               uid: str = "uid-1", name: str = "digits", keep_versions: int | None = None,
               output: str | None = None, model_name: str | None = None,
               benchmark: StageRecord | None = None) -> StageContext:
    """A run of `generation` whose select stage chose `winner` (None: no variant passed), sealed."""
    store = LocalStorage(root / "run")
    variants = []
    for variant, (runtime, artifact, files) in ARTIFACTS.items():
        key = f"variants/{variant}/{artifact}"
        for relative, data in files.items():
            store.write_bytes(f"{key}/{relative}" if relative else key, data)
        variants.append(VariantRecord(name=variant, runtime=runtime, status="built", artifact=key, size_bytes=10,
                                      built_by="inspect"))
    store.write_bytes("variants/tf-frozen/io.json", b'{"inputs": [{"name": "image", "tensor": "x:0", "dtype": '
                      b'"float32", "shape": [null, 8, 8, 1]}], "outputs": [{"name": "probs", "tensor": "Identity:0", '
                      b'"dtype": "float32", "shape": [null, 10]}]}')
    record = StageRecord(stage="inspect", status="succeeded", started_at="2025-01-01T00:00:00.000Z",
                         finished_at="2025-01-01T00:00:01.000Z", duration_seconds=1.0, variants=variants)
    store.write_bytes(stage_record("inspect"), record.model_dump_json().encode())
    selection = Selection(
        objective="latencyP50", batch_size=1, winner=winner, winner_target="cpu" if winner else None,
        outcome="selected" if winner else "no-variant-passed",
        message="picked" if winner else "no variant passed the gates (2 candidate(s): 2 are too slow)",
        candidates=[candidate(v, v == winner) for v in ARTIFACTS],
    )
    select = StageRecord(stage="select", status="succeeded", started_at="2025-01-01T00:00:02.000Z",
                         finished_at="2025-01-01T00:00:03.000Z", duration_seconds=1.0,
                         payload={"selection": selection.model_dump(mode="json")})
    store.write_bytes(stage_record("select"), select.model_dump_json().encode())
    if benchmark is not None:
        store.write_bytes(stage_record("benchmark", benchmark.target), benchmark.model_dump_json().encode())
    store.write_bytes("results.json", b"{}")
    write_manifest(store)
    spec: dict[str, object] = {"model": {"uri": str(root / "model")}, "output": {"uri": output or str(root / "out")}}
    if promotion is not None:
        spec["promotion"] = {"uri": promotion, **({"keepVersions": keep_versions} if keep_versions else {}),
                             **({"modelName": model_name} if model_name else {})}
    manifest = ModelOptimization.model_validate({
        "apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization",
        "metadata": {"name": name, "namespace": "ml", "generation": generation, "uid": uid}, "spec": spec,
    })
    return StageContext(manifest=manifest, store=store, workdir=root / "work")
