"""What a tenant may ask of the operator: which worker images a ModelOptimization may run.

Whoever can create a ModelOptimization would otherwise run any image under the workers' service account
(and its cloud role). The operator's settings decide: `worker_image_override` says whether spec.targets[].image
is honoured at all, and `worker_allowed_images` lists the images (fnmatch patterns, e.g.
`registry.example.com/optismith/*`) a target may name; the operator's own worker images are always allowed.
Pure: tested without a cluster; the handler turns a refusal into a Stalled resource with reason
ImageNotAllowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from optismith.spec import ModelOptimizationSpec


def image_refusal(spec: ModelOptimizationSpec, defaults: Sequence[str], allowed: Sequence[str],
                  override: bool) -> str | None:
    """Why this spec's images may not run, or None."""
    for index, target in enumerate(spec.targets):
        image = target.image
        if image is None or image in defaults:
            continue
        where = f"spec.targets[{index}].image {image!r}"
        if not override:
            return (f"{where}: this operator does not let resources choose worker images (worker.imageOverride is "
                    "false); remove the field to use the operator's worker image")
        if not any(fnmatchcase(image, pattern) for pattern in allowed):
            shown = ", ".join(allowed) or "none besides the operator's own"
            return f"{where} is not in the operator's allowed worker images ({shown}); use one of them"
    return None
