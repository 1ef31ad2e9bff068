"""The CRD's status schema, with a description on every field the operator writes (controller/status.py),
so `kubectl explain mo.status.winner` documents it. A test checks every key status.py writes is described.
Unknown fields are preserved: an older operator does not prune what a newer one wrote."""

from __future__ import annotations

from typing import Any


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _integer(description: str) -> dict[str, Any]:
    return {"type": "integer", "format": "int64", "description": description}


def _object(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties}


CONDITION = _object("A metav1.Condition. Types: Ready (a usable, promoted-if-configured winner exists), "
                    "Reconciling (the current generation is being worked on), Stalled (it ended without a usable "
                    "winner and will not progress until the spec changes), Succeeded (the run completed, whatever "
                    "the verdict), AccuracyGatePassed, Promoted.", {
    "type": _string("Condition type.", maxLength=316),
    "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0,
                           "description": "The generation this condition was set for."},
    "lastTransitionTime": _string("When status last changed.", format="date-time"),
    "reason": _string("CamelCase reason (docs/troubleshooting.md explains each).", maxLength=1024),
    "message": _string("Human-readable detail.", maxLength=32768),
})
CONDITION["required"] = ["type", "status", "lastTransitionTime", "reason", "message"]

STAGE = _object("One step (Job) of the run.", {
    "name": _string("Step name: prepare, measure-<target>, finalize, promote."),
    "phase": _string("Pipeline phase of the step."),
    "state": _string("waiting, queued, pending, running, succeeded, retrying or failed."),
    "attempts": {"type": "integer", "description": "Job attempts so far."},
    "target": _string("Target of a measure step."),
    "job": _string("Name of the step's latest Job."),
    "startedAt": _string("When the Job started.", format="date-time"),
    "finishedAt": _string("When the Job finished.", format="date-time"),
    "message": _string("What the step reported last."),
    "reason": _string("Why the step failed or waits."),
})

VARIANT = _object("Headline numbers of one candidate (variant on a target) at the selection batch size; the "
                  "full results are in the run directory's results.json.", {
    "name": _string("Variant name (the catalog's)."),
    "target": _string("Target it was measured on."),
    "latencyP50Ms": _string("Median latency, ms."),
    "latencyP99Ms": _string("99th percentile latency, ms."),
    "throughputPerSecond": _string("Samples per second (offline scenario)."),
    "sizeBytes": {"type": "integer", "description": "Artifact size in bytes."},
    "accuracyDrop": _string("Accuracy drop vs the source model, as a fraction (positive = worse)."),
    "speedup": _string("Baseline p50 / variant p50, from paired rounds."),
    "passed": {"type": "boolean", "description": "Whether it passed every gate."},
})

STATUS_PROPERTIES: dict[str, Any] = {
    "observedGeneration": _integer("The generation the status describes."),
    "phase": _string("Queued, Running, Retrying, Succeeded (the run completed; see Ready for the verdict) or Failed."),
    "runUri": _string("The run directory of this generation (report.md, results.json, manifest.json)."),
    "supersededGeneration": _integer("The generation whose run this one replaced mid-way."),
    "conditions": {"type": "array", "description": "Conditions kstatus, Flux, Argo CD and kubectl wait read.",
                   "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "items": CONDITION},
    "stages": {"type": "array", "description": "Every step of the run, in plan order.", "items": STAGE},
    "variants": {"type": "array", "description": "The candidates (at most 24).", "items": VARIANT},
    "selection": _object("How the winner was chosen.", {
        "outcome": _string("selected or no-variant-passed."),
        "objective": _string("The objective minimized or maximized (spec.selection.objective)."),
        "batchSize": {"type": "integer", "description": "The batch size the selection compared at."},
        "message": _string("Why this winner, or why none."),
    }),
    "winner": _object("The selected variant; absent when no variant passed.", {
        "variant": _string("Variant name."),
        "target": _string("Target it won on."),
        "speedup": _string("Speedup over the source model, e.g. 3.10x."),
        "latencyP50": _string("Median latency, e.g. 0.412ms."),
        "latencyP99": _string("99th percentile latency."),
        "accuracyDrop": _string("Accuracy drop in percent, e.g. 0.20%."),
        "sizeBytes": {"type": "integer", "description": "Artifact size in bytes."},
    }),
    "promoted": _object("What spec.promotion.uri holds after this run promoted its winner (promotion.json).", {
        "uri": _string("The stable promotion URI (Triton repository at triton/, TF Serving at tfserving/<model>)."),
        "storageUri": _string("The KServe storageUri: only the current version, in the layout its runtime loads."),
        "variant": _string("The promoted variant."),
        "digest": _string("sha256 of the promoted artifact: bump a server's annotation with it to roll out."),
        "version": _integer("The serving version number (a version directory; only ever grows)."),
        "runtime": _string("The runtime that loads it (tflite, onnxruntime, tf-savedmodel, ...)."),
        "format": _string("savedmodel, onnx, tflite, graphdef or openvino."),
    }),
}

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Observed state, written by the operator. Wait for Ready=True, and stop waiting on Stalled=True.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": STATUS_PROPERTIES,
}
