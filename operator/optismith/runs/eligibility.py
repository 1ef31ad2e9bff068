"""Whether a built variant can run on the target a stage runs for, and with which runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.results import VariantRecord
from optismith.runtimes import Runtime, get_runtime
from optismith.spec import ModelOptimizationSpec, TargetSpec


def gpu_visible() -> bool:
    """An NVIDIA device is visible to this process (without importing a framework to ask)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidia0").exists()


def resolve(variant: VariantRecord, target: TargetSpec | None) -> tuple[type[Runtime] | None, str]:
    """(runtime, "") when the variant can run here, else (None, why not)."""
    if variant.status != "built":
        return None, f"not built ({variant.status}): {variant.reason}".rstrip(": ")
    if not variant.artifact:
        return None, "the build recorded no artifact"
    info = catalog.find(variant.name)
    if info is not None and info.gpu:
        if target is not None and target.kind == "cpu":
            return None, f"needs a GPU; target {target.name!r} is a CPU target"
        if not gpu_visible():
            return None, "needs a GPU; no GPU is visible to this process"
    try:
        runtime = get_runtime(variant.runtime)
    except (KeyError, ImportError) as error:
        return None, f"runtime {variant.runtime!r} is not available: {error}"
    unavailable = runtime.availability()
    if unavailable is not None:
        return None, unavailable
    return runtime, ""


def load_options(variant: catalog.Variant, spec: ModelOptimizationSpec) -> dict[str, Any]:
    """Options for `Runtime.load` of a variant: the catalog's, plus the serving signature (the TensorFlow
    runtimes serve the spec's signature of a SavedModel; the others ignore it)."""
    return {"signature": spec.model.signature, **variant.runtime_options}
