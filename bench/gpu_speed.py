"""GPU speed: Optismith's GPU variants and winner on a real GPU, against ONNX Runtime CUDA with its defaults
and PyTorch, each ratio measured in one run (docs/benchmarks.md, "GPU").

On a CPU machine (TensorFlow, tf2onnx), the prepare phase as a CPU Job runs it, into run directories:

    python -m bench.gpu_speed prepare --workdir W --pack W/gpu_runs.tar

On the GPU machine (onnxruntime-gpu; no TensorFlow, as on the GPU worker image):

    python -m bench.gpu_speed unpack --pack gpu_runs.tar --dest /tmp/gpu
    python -m bench.gpu_speed run --runs /tmp/gpu --out bench/results/gpu_speed.json

`run` does, per model (digits, mobilenetv2, resnet50): `optismith stage benchmark evaluate --target gpu`
(the CLI, in this process), then select; then, in the same process, every ONNX variant's kernels per
execution provider (a profiled run), and the winner against the peers by hand (bench/gpu_peers.py) in
interleaved rounds. `--cpu-dry-run` runs the same code paths on the CPU provider (numbers meaningless).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench import gpu_pack
from bench.common import command_line, now_utc, package_versions, write_json

MODELS = ("digits", "mobilenetv2", "resnet50")
TARGET = "gpu"
VARIANTS = ["tf-savedmodel", "onnx-fp32", "onnx-cuda-fp32", "onnx-cuda-tf32", "onnx-cuda-fp16",
            "onnx-cuda-fp16-fused", "onnx-tensorrt-fp16"]
BATCHES = {"digits": [1, 64], "mobilenetv2": [1, 64], "resnet50": [1, 64, 256]}
SELECTION = {"digits": ("latencyP50", 1), "mobilenetv2": ("latencyP50", 1), "resnet50": ("throughput", 256)}
PEER_BATCHES = {"digits": [1], "mobilenetv2": [1], "resnet50": [64, 256]}
PREPARE_STAGES = ("inspect", "freeze", "convert")


def manifest_document(model: str, evaluation_samples: int) -> dict[str, Any]:
    """What a user would write for this model's GPU target (paths relative to the manifest's folder)."""
    objective, batch = SELECTION[model]
    return {
        "apiVersion": "optismith.io/v1alpha1", "kind": "ModelOptimization", "metadata": {"name": f"gpu-{model}"},
        "spec": {
            "model": {"uri": "model"},
            "variants": VARIANTS,
            "targets": [{"name": TARGET, "kind": "gpu"}],
            "evaluation": {"uri": "eval.npz", "samples": evaluation_samples},
            "benchmark": {"batchSizes": BATCHES[model], "warmupRuns": 5, "minRounds": 15, "timeBudget": "1500ms",
                          "stability": "2%", "scenarios": ["singleStream", "offline"], "finalists": 0},
            "selection": {"objective": objective, "batchSize": batch, "constraints": {"maxAccuracyDrop": "1%"}},
            "output": {"uri": "out"},
        },
    }


def _source(model: str, folder: Path) -> dict[str, Any]:
    if model == "digits":
        import shutil

        from examples.digits.train import build_and_train

        trained = folder / "trained"
        facts = build_and_train(trained, epochs=30, seed=0)
        shutil.copytree(trained / "model", folder / "model", dirs_exist_ok=True)
        shutil.copyfile(trained / "data" / "eval.npz", folder / "eval.npz")
        shutil.rmtree(trained)
        return facts
    from bench.gpu_models import make_application

    return make_application(model, folder)


def _samples_recipe(run_dir: Path) -> dict[str, Any]:
    from optismith.results import StageRecord
    from optismith.runs import layout

    inspect = StageRecord.model_validate_json((run_dir / layout.stage_record("inspect")).read_bytes())
    samples = inspect.payload["samples"]
    return {"kind": "samples", "inputs": inspect.payload["source"]["inputs"], "count": samples["count"],
            "seed": samples["seed"]}


def regenerate(recipe: dict[str, Any]) -> dict[str, np.ndarray]:
    if recipe["kind"] == "samples":
        from optismith import tensors
        from optismith.results import TensorInfo

        inputs = [TensorInfo.model_validate(t) for t in recipe["inputs"]]
        return tensors.synthetic(inputs, int(recipe["count"]), int(recipe["seed"]))
    from bench.gpu_models import evaluation_arrays

    x, y = evaluation_arrays(recipe["model"])
    return {"x": x, "y": y}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: np.asarray(archive[name]) for name in archive.files}


def prepare(workdir: Path, pack_path: Path, models: list[str]) -> dict[str, Any]:
    from optismith.pipeline import run_stage
    from optismith.spec import load_manifest
    from optismith.storage.local import LocalStorage

    root = workdir / "gpu"
    regenerated: dict[str, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    for model in models:
        folder = root / model
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "model" / "saved_model.pb").exists():
            facts[model] = _source(model, folder)
        evaluation_samples = int(_arrays(folder / "eval.npz")["x"].shape[0])
        path = folder / "optimization.yaml"
        path.write_text(yaml.safe_dump(manifest_document(model, evaluation_samples), sort_keys=False))
        manifest = load_manifest(path)
        store = LocalStorage(folder / "run")
        with tempfile.TemporaryDirectory() as scratch:
            for stage in PREPARE_STAGES:
                record = run_stage(manifest, store, stage, workdir=Path(scratch), progress=print)
                print(f"{model} {stage}: {record.message}", flush=True)
        recipes = {f"{model}/run/samples/inputs.npz": _samples_recipe(folder / "run")}
        if model != "digits":
            recipes[f"{model}/eval.npz"] = {"kind": "eval", "model": model}
        for relative, recipe in recipes.items():
            digest = gpu_pack.arrays_digest(_arrays(root / relative))
            if gpu_pack.arrays_digest(regenerate(recipe)) != digest:
                raise SystemExit(f"{relative} cannot be regenerated from its recipe: it would not travel honestly")
            regenerated[relative] = {"recipe": recipe, "digest": digest}
    index = gpu_pack.pack(root, regenerated, pack_path)
    print(f"packed {len(index['files'])} files ({len(index['blobs'])} distinct) and {len(regenerated)} "
          f"regenerated into {pack_path} ({pack_path.stat().st_size / 2**20:.1f} MiB)")
    return facts


def cpu_dry_run() -> None:
    """Stand the CPU provider in for CUDA: the GPU code paths run here (IO binding, per-batch sessions)."""
    from optismith.runs import eligibility
    from optismith.runtimes import onnx_cuda

    def unavailable(options: dict[str, Any]) -> str | None:
        return onnx_cuda.tensorrt_missing() if options.get("ep") == "tensorrt" else None

    onnx_cuda.PLACEMENT = onnx_cuda.Placement("cpu", "CPUExecutionProvider", strict=False)
    onnx_cuda.gpu_unavailable = unavailable  # type: ignore[assignment]
    eligibility.gpu_visible = lambda: True  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="make the models and run the prepare phase into run directories (CPU)")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--pack", type=Path, required=True)
    p.add_argument("--models", default=",".join(MODELS))
    u = sub.add_parser("unpack", help="rebuild the run directories from a pack (checks every digest)")
    u.add_argument("--pack", type=Path, required=True)
    u.add_argument("--dest", type=Path, required=True)
    r = sub.add_parser("run", help="measure on the GPU")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--models", default=",".join(MODELS))
    r.add_argument("--budget", type=float, default=420.0, help="seconds; peers are skipped past it")
    r.add_argument("--peer-seconds", type=float, default=8.0)
    r.add_argument("--cpu-dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        facts = prepare(args.workdir, args.pack, args.models.split(","))
        write_json(args.pack.with_suffix(".facts.json"), {"date": now_utc(), "models": facts})
        return 0
    if args.command == "unpack":
        started = time.perf_counter()
        count = gpu_pack.unpack(args.pack, args.dest, regenerate)
        print(f"unpacked {count} files into {args.dest} in {time.perf_counter() - started:.1f}s (digests checked)")
        return 0
    if args.cpu_dry_run:
        cpu_dry_run()
    from bench.gpu_run import run_models

    document = {"date": now_utc(), "command": command_line(), "cpu_dry_run": args.cpu_dry_run,
                "versions": package_versions(("optismith", "onnxruntime-gpu", "onnxruntime", "onnx", "numpy",
                                              "torch", "torchvision", "pydantic"))}
    deadline = time.perf_counter() + args.budget
    with contextlib.suppress(KeyboardInterrupt):
        run_models(args.runs, args.models.split(","), document, args.out, deadline=deadline,
                   peer_seconds=args.peer_seconds, dry=args.cpu_dry_run)
    write_json(args.out, document)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
