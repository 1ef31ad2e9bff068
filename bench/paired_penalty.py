"""How much slower a variant is when timed right after the baseline, as the benchmark stage's paired rounds
time it, than when it runs on its own.

    python -m bench.model_speed --models mobilenetv2 --workdir /tmp/speed      # keeps the run directory
    python -m bench.paired_penalty --run-dir /tmp/speed/optismith/mobilenetv2/run

After a call, a runtime's thread pool keeps spinning for a while (TensorFlow's, ONNX Runtime's, XNNPACK's);
on a machine with few cores the next model's threads then share the cores with it. For each variant and
thread count: the stage's own paired_rounds, the variant timed right after a baseline call, timed after a
baseline call and one untimed call of its own, and timed alone. Prints a markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import csv_ints, csv_words, markdown_table

DEFAULT_VARIANTS = ("tflite-int8", "onnx-int8", "tflite-fp32", "onnx-fp32")


def _median_ms(samples: list[float] | np.ndarray) -> float:
    return float(np.median(samples)) * 1e3


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(variant: Callable[[], object], baseline: Callable[[], object], rounds: int) -> dict[str, float]:
    from optismith.measure.paired import RoundsPolicy, paired_rounds

    paired = paired_rounds(variant, baseline, RoundsPolicy(warmup=3, min_rounds=rounds, budget_s=0.0,
                                                           stability=0.0))
    after, settled, alone = [], [], []
    for _ in range(rounds):
        baseline()
        after.append(_timed(variant))
        baseline()
        variant()
        settled.append(_timed(variant))
    for _ in range(rounds):
        alone.append(_timed(variant))
    return {"paired_rounds_ms": _median_ms(paired.variant_s), "after_baseline_ms": _median_ms(after),
            "after_baseline_and_one_call_ms": _median_ms(settled), "alone_ms": _median_ms(alone)}


def run(run_dir: Path, variants: list[str], threads: list[int], rounds: int) -> list[dict[str, Any]]:
    from optismith import catalog
    from optismith.runs.layout import variant_artifact
    from optismith.runtimes import get_runtime

    with np.load(run_dir / "samples" / "inputs.npz") as data:
        x = np.ascontiguousarray(data[data.files[0]][:1], dtype=np.float32)
    rows = []
    for count in threads:
        baseline = get_runtime("tf-savedmodel").load(run_dir / variant_artifact("tf-savedmodel"), threads=count)
        for name in variants:
            path = run_dir / variant_artifact(name)
            if not path.exists():
                continue
            session = get_runtime(catalog.get(name).runtime).load(path, threads=count)
            result = measure(lambda s=session: s.run([x]), lambda b=baseline: b.run([x]), rounds)
            rows.append({"variant": name, "threads": count, **result})
            session.close()
        baseline.close()
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["variant", "threads", "paired_rounds ms", "right after baseline ms", "+ one untimed call ms",
               "alone ms", "penalty"]
    return markdown_table(headers, [[r["variant"], r["threads"], f"{r['paired_rounds_ms']:.3f}",
                                     f"{r['after_baseline_ms']:.3f}", f"{r['after_baseline_and_one_call_ms']:.3f}",
                                     f"{r['alone_ms']:.3f}", f"{r['paired_rounds_ms'] / r['alone_ms']:.2f}x"]
                                    for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="an Optismith run directory")
    parser.add_argument("--variants", type=csv_words, default=list(DEFAULT_VARIANTS))
    parser.add_argument("--threads", type=csv_ints, default=list(range(1, (os.cpu_count() or 1) + 1)))
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    print(render(run(args.run_dir, args.variants, args.threads, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
