"""What differs on a GPU target: the reference every speedup is measured against, and the environment.

The baseline is the source model as TensorFlow serves it. On a GPU target that means TensorFlow on that GPU;
where the image has no TensorFlow that sees the GPU, the reference is ONNX Runtime's CUDA provider with its
default settings, host-bound (the `onnx-fp32` artifact, numpy in and numpy out, TF32 on, as a user would
call `session.run`), and the record says so. A CPU number is never the reference of a GPU target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optismith import catalog
from optismith.errors import StageError
from optismith.measure.gpu import describe_gpus
from optismith.measure.host import describe_environment
from optismith.results import VariantBenchmark, VariantRecord
from optismith.runs.eligibility import device_of, load_options, resolve
from optismith.runs.stage import StageContext
from optismith.runtimes import Runtime

GPU_REFERENCE = "onnx-fp32"


@dataclass(frozen=True)
class Reference:
    record: VariantRecord
    runtime: type[Runtime]
    options: dict[str, Any]
    note: dict[str, Any] = field(default_factory=dict)  # the stage record's payload["reference"]
    skipped_baseline: VariantBenchmark | None = None  # the baseline's own entry when it could not run here


def choose_reference(ctx: StageContext, variants: list[VariantRecord]) -> Reference:
    by_name = {v.name: v for v in variants}
    baseline = by_name.get(catalog.BASELINE)
    if baseline is None:
        raise StageError(f"the baseline {catalog.BASELINE} was not recorded by any build stage",
                         where=ctx.store.uri, fix="run the inspect stage first")
    runtime, why = resolve(baseline, ctx.target)
    if runtime is not None:
        options = load_options(catalog.get(catalog.BASELINE), ctx.spec, ctx.target)
        return Reference(baseline, runtime, options, {"variant": catalog.BASELINE, "runtime": runtime.name})
    if device_of(ctx.target) != "gpu":
        raise StageError(f"the baseline {catalog.BASELINE} cannot run here: {why}", where=ctx.store.uri,
                         fix="every speedup is measured against the baseline: run this target with TensorFlow "
                         "installed")
    fallback = by_name.get(GPU_REFERENCE)
    fallback_runtime, fallback_why = (resolve(fallback, ctx.target) if fallback is not None
                                      else (None, f"{GPU_REFERENCE} was not built (add it to spec.variants)"))
    if fallback is None or fallback_runtime is None:
        raise StageError(f"nothing to measure against on this GPU: the baseline {catalog.BASELINE} cannot run "
                         f"({why}), nor can the reference {GPU_REFERENCE} ({fallback_why})", where=ctx.store.uri,
                         fix="use a GPU image with onnxruntime-gpu (or a GPU TensorFlow) and build onnx-fp32")
    note = {"variant": GPU_REFERENCE, "runtime": fallback_runtime.name, "baseline_skipped": why,
            "why": f"the baseline {catalog.BASELINE} cannot run on this GPU ({why}): the reference is "
                   f"{GPU_REFERENCE} on ONNX Runtime's CUDA provider with its default settings (TF32 on, "
                   "host-bound: numpy in and out each call, as a user calls session.run)"}
    ctx.progress(note["why"])
    skipped = VariantBenchmark(variant=catalog.BASELINE, target=ctx.target_name, status="skipped", reason=why)
    options = load_options(catalog.get(GPU_REFERENCE), ctx.spec, ctx.target)
    return Reference(fallback, fallback_runtime, options, note, skipped)


def environment(ctx: StageContext, versions: dict[str, str]) -> dict[str, Any]:
    """The host's description, and on a GPU target the GPUs' (nvidia-smi, the CUDA runtime, cuDNN)."""
    described = describe_environment(versions)
    if device_of(ctx.target) == "gpu":
        described["gpu"] = describe_gpus()
    return described
