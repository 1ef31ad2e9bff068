"""The GPU bench's measuring side (bench/gpu_speed.py `run`): the stages through the CLI, select, placement,
the peers, and the goals, into one JSON document written after every model (a timeout keeps what ran)."""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_json
from bench.gpu_peers import TORCHVISION, interleave, ort_defaults, torch_fp16_graph
from bench.gpu_speed import PEER_BATCHES, TARGET

MIB = 2**20


def _record(run_dir: Path, stage: str, target: str | None = TARGET) -> Any:
    from optismith.results import StageRecord
    from optismith.runs import layout

    return StageRecord.model_validate_json((run_dir / layout.stage_record(stage, target)).read_bytes())


def _config(config: Any) -> dict[str, Any]:
    host = config.host_latency
    return {"p50_ms": config.latency.p50_ms, "p99_ms": config.latency.p99_ms,
            "throughput_per_s": config.throughput_per_s, "speedup": config.speedup, "stable": config.stable,
            "rounds": config.rounds, "host_p50_ms": host.p50_ms if host else None,
            "host_throughput_per_s": config.batch_size / (host.mean_ms / 1e3) if host else None}


def summarize(bench: Any, evaluation: Any) -> dict[str, Any]:
    accuracy = {a.variant: a for a in evaluation.accuracy}
    variants: dict[str, Any] = {}
    for result in bench.benchmarks:
        found = accuracy.get(result.variant)
        variants[result.variant] = {
            "status": result.status, "reason": result.reason[:600], "execution": result.execution,
            "gpu_memory_peak_mib": (result.gpu_memory_peak_bytes / MIB
                                    if result.gpu_memory_peak_bytes is not None else None),
            "cold_start_ms": result.cold_start_ms,
            "by_batch": {batch: _config(config) for batch, config in result.best_by_batch.items()},
            "accuracy": ({"metric": found.metric, "value": found.value, "drop": found.drop,
                          "top1_agreement": found.numerics.top1_agreement if found.numerics else None,
                          "max_abs_error": found.numerics.max_abs_error if found.numerics else None}
                         if found else None),
        }
    return variants


def placement(run_dir: Path, manifest: Any, bench: Any, sample: np.ndarray) -> dict[str, Any]:
    from optismith import catalog
    from optismith.runs.eligibility import load_options
    from optismith.runtimes.onnx_cuda import node_placement

    target = manifest.spec.targets[0]
    counts: dict[str, Any] = {}
    for result in bench.benchmarks:
        entry = catalog.find(result.variant)
        if result.status != "built" or entry is None or entry.runtime != "onnxruntime":
            continue
        options = load_options(entry, manifest.spec, target)
        import onnxruntime as ort

        name = ort.InferenceSession(str(run_dir / entry.key), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        try:
            counts[result.variant] = node_placement(run_dir / entry.key, options, {name: sample[:1]})
        except Exception as error:
            counts[result.variant] = {"error": f"{type(error).__name__}: {error}"[:400]}
    return counts


def peers(model: str, run_dir: Path, manifest: Any, winners: dict[int, str | None], x: np.ndarray,
          seconds: float, dry: bool) -> dict[str, Any]:
    from optismith import catalog, tensors
    from optismith.runs.eligibility import load_options
    from optismith.runtimes.onnx import OnnxRuntime

    target = manifest.spec.targets[0]
    measured: dict[str, Any] = {}
    for batch in PEER_BATCHES[model]:
        feeds = tensors.batch_of([x], batch)
        calls: dict[str, Any] = {}
        keep: list[Any] = []
        winner = winners.get(batch)
        if winner and catalog.find(winner) is not None:
            entry = catalog.get(winner)
            options = load_options(entry, manifest.spec, target)
            session = OnnxRuntime.load(run_dir / entry.key, threads=1, options=options)
            keep.append(session)
            calls[f"optismith {winner}"] = (session.bind(feeds), batch)
            if session.device_resident:
                calls[f"optismith {winner}, end to end"] = ((lambda s=session, f=feeds: s.run(f)), batch)
        provider = "CPUExecutionProvider" if dry else "CUDAExecutionProvider"
        call, handle = ort_defaults(run_dir / catalog.get("onnx-fp32").key, feeds[0], provider)
        keep.append(handle)
        calls["onnxruntime CUDA defaults by hand (numpy in/out)"] = (call, batch)
        if model in TORCHVISION and not dry:
            try:
                call, handle = torch_fp16_graph(model, batch)
                keep.append(handle)
                calls[f"PyTorch torchvision {TORCHVISION[model]} fp16 CUDA graph (different implementation)"] = (
                    call, batch)
            except Exception as error:
                measured[f"torch b{batch}"] = {"error": f"{type(error).__name__}: {error}"[:400]}
        measured[str(batch)] = interleave(calls, seconds)
        for handle in keep:
            close = getattr(handle, "close", None)
            if callable(close):
                close()
    return measured


def measure_model(folder: Path, model: str, deadline: float, peer_seconds: float, dry: bool) -> dict[str, Any]:
    from optismith import cli
    from optismith.pipeline import run_stage
    from optismith.results import Selection
    from optismith.spec import load_manifest
    from optismith.storage.local import LocalStorage

    manifest_path, run_dir = folder / "optimization.yaml", folder / "run"
    termination = folder / "termination.json"
    os.environ[cli.TERMINATION_LOG_ENV] = str(termination)
    started = time.perf_counter()
    code: Any = 0
    try:
        cli.main(["stage", "benchmark", "evaluate", "-f", str(manifest_path), "--run-uri", str(run_dir),
                  "--target", TARGET])
    except SystemExit as exit_:
        code = exit_.code
    result: dict[str, Any] = {"cli_exit_code": code, "stages_seconds": time.perf_counter() - started,
                              "termination_message": json.loads(termination.read_text()) if termination.exists()
                              else None}
    manifest = load_manifest(manifest_path)
    with tempfile.TemporaryDirectory() as scratch:
        run_stage(manifest, LocalStorage(run_dir), "select", workdir=Path(scratch))
    bench, evaluation = _record(run_dir, "benchmark"), _record(run_dir, "evaluate")
    selection = Selection.model_validate(_record(run_dir, "select", None).payload["selection"])
    result.update({
        "reference": bench.payload["reference"], "plan": bench.payload["plan"],
        "evaluation": {"data": evaluation.payload["data"], "reference": evaluation.payload["reference"],
                       "skipped": evaluation.payload["skipped"], "failed": evaluation.payload["failed"]},
        "variants": summarize(bench, evaluation),
        "selection": {"objective": selection.objective, "batch_size": selection.batch_size,
                      "winner": selection.winner, "message": selection.message,
                      "candidates": [{"variant": c.variant, "passed": c.passed, "reasons": c.reasons,
                                      "objective_value": c.objective_value} for c in selection.candidates]},
    })
    with np.load(folder / "eval.npz") as data:
        x = np.asarray(data["x"], dtype=np.float32)
    result["placement"] = placement(run_dir, manifest, bench, x)
    if time.perf_counter() > deadline:
        result["peers"] = {"skipped": "past the bench's time budget"}
        return result
    passed = [c for c in selection.candidates if c.passed]
    winners: dict[int, str | None] = {}
    for batch in PEER_BATCHES[model]:
        if batch == selection.batch_size:
            winners[batch] = selection.winner
        else:  # the fastest variant that passed the gates at this batch size
            def speed(variant: str, batch: int = batch) -> float:
                return float(result["variants"][variant]["by_batch"].get(str(batch), {}).get("throughput_per_s", 0))

            by_speed = sorted((c.variant for c in passed), key=lambda v: -speed(v))
            winners[batch] = by_speed[0] if by_speed else None
    result["peers"] = peers(model, run_dir, manifest, winners, x, peer_seconds, dry)
    return result


def goals(models: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    mobilenet = models.get("mobilenetv2", {})
    if "selection" in mobilenet and mobilenet["selection"]["winner"]:
        winner = mobilenet["selection"]["winner"]
        config = mobilenet["variants"][winner]["by_batch"]["1"]
        reference = mobilenet["variants"][mobilenet["reference"]["variant"]]["by_batch"]["1"]
        found["mobilenetv2_b1"] = {"winner": winner, "p50_ms": config["p50_ms"],
                                   "reference_p50_ms": reference["p50_ms"], "ratio_paired": 1.0 / config["speedup"],
                                   "goal": "<= 0.6", "met": 1.0 / config["speedup"] <= 0.6}
    resnet = models.get("resnet50", {})
    if "selection" in resnet:
        passed = [c["variant"] for c in resnet["selection"]["candidates"] if c["passed"]]
        def at_256(variant: str) -> float:
            return float(resnet["variants"][variant]["by_batch"].get("256", {}).get("throughput_per_s", 0))

        best = max(passed, key=at_256, default=None)
        reference = resnet["variants"][resnet["reference"]["variant"]]["by_batch"].get("64", {})
        if best is not None:
            throughput = resnet["variants"][best]["by_batch"].get("256", {}).get("throughput_per_s", 0.0)
            base = reference.get("throughput_per_s") or float("nan")
            found["resnet50_throughput"] = {"variant": best, "throughput_per_s_b256": throughput,
                                            "reference_throughput_per_s_b64": base, "ratio": throughput / base,
                                            "goal": ">= 15000 img/s and >= 2.7x", "gate": "passed",
                                            "met": throughput >= 15000 and throughput / base >= 2.7}
    return found


def run_models(root: Path, models: list[str], document: dict[str, Any], out: Path, *, deadline: float,
               peer_seconds: float, dry: bool) -> None:
    from optismith.measure.gpu import describe_gpus

    document["gpu_before"] = describe_gpus()
    document["models"] = {}
    for model in models:
        started = time.perf_counter()
        print(f"=== {model}", flush=True)
        try:
            document["models"][model] = measure_model(root / model, model, deadline, peer_seconds, dry)
        except Exception:
            document["models"][model] = {"error": traceback.format_exc()[-4000:]}
            print(document["models"][model]["error"], flush=True)
        document["models"][model]["seconds"] = time.perf_counter() - started
        document["goals"] = goals(document["models"])
        write_json(out, document)
    document["gpu_after"] = describe_gpus()
