"""Whether a built variant can run on the target a stage runs for, with which runtime and on which device.

A target's kind is the device: on a GPU target every variant runs on the GPU or not at all. A runtime that
computes only on the CPU (TFLite, OpenVINO's CPU plugin) is skipped there with that reason, and one that
could silently run on the CPU (ONNX Runtime without its CUDA provider, a CPU build of TensorFlow) says so
through `Runtime.availability_on`, so no GPU target ever reports a CPU number. On a CPU target a variant
whose precision needs CPU features (catalog `cpu_features`: bf16, int8 dot products) runs only where the
measuring CPU has them: elsewhere it would be measured at a loss, so it is skipped with that reason.
"""

from __future__ import annotations

from typing import Any

from optismith import catalog
from optismith.measure import cpu_features
from optismith.measure.gpu import gpu_visible
from optismith.results import VariantRecord
from optismith.runtimes import Runtime, get_runtime
from optismith.runtimes.base import DEVICE_OPTION, Device
from optismith.spec import ModelOptimizationSpec, TargetSpec

__all__ = ["device_of", "gpu_visible", "load_options", "resolve"]


def device_of(target: TargetSpec | None) -> Device:
    """Where a target's sessions compute: its kind ("cpu" outside any target)."""
    return "gpu" if target is not None and target.kind == "gpu" else "cpu"


def resolve(variant: VariantRecord, target: TargetSpec | None) -> tuple[type[Runtime] | None, str]:
    """(runtime, "") when the variant can run here, else (None, why not)."""
    if variant.status != "built":
        return None, f"not built ({variant.status}): {variant.reason}".rstrip(": ")
    if not variant.artifact:
        return None, "the build recorded no artifact"
    info = catalog.find(variant.name)
    device = device_of(target)
    if info is not None and info.gpu and device == "cpu":
        where = f"target {target.name!r} is a CPU target" if target is not None else "this is no GPU target"
        return None, f"needs a GPU; {where}"
    if device == "gpu" and not gpu_visible():
        return None, "needs a GPU; no GPU is visible to this process"
    if info is not None and device == "cpu" and info.cpu_features:
        slow = cpu_features.shortfall(info.cpu_features, cpu_features.host_flags())
        if slow is not None:
            return None, slow
    try:
        runtime = get_runtime(variant.runtime)
    except (KeyError, ImportError) as error:
        return None, f"runtime {variant.runtime!r} is not available: {error}"
    options = dict(info.runtime_options) if info is not None else {}
    unavailable = runtime.availability_on(device, options)
    if unavailable is not None:
        return None, unavailable
    return runtime, ""


def load_options(variant: catalog.Variant, spec: ModelOptimizationSpec,
                 target: TargetSpec | None = None) -> dict[str, Any]:
    """Options for `Runtime.load` of a variant: the catalog's, the serving signature (the TensorFlow
    runtimes serve the spec's signature of a SavedModel; the others ignore it) and the target's device."""
    return {"signature": spec.model.signature, **variant.runtime_options, DEVICE_OPTION: device_of(target)}
