"""The run directory's layout: every key a run writes, and where a run directory lives.

    <output>/<namespace>/<name>/<run id>/     a run directory (run id: gen-<generation> under the operator,
                                              run-<UTC timestamp> for `optismith run`)
        stages/<stage>.json                   one StageRecord per finished stage
        stages/<stage>@<target>.json          ... per target for per-target stages (benchmark, evaluate)
        samples/inputs.npz, outputs.npz       seeded inputs and the baseline's outputs on them (inspect)
        variants/<variant>/<artifact>         each variant's artifact (catalog: Variant.artifact)
        variants/<variant>/io.json            a GraphDef's signature (freeze, optimize)
        benchmarks/<target>/<variant>-b<N>.npy  per-call latencies of a variant's best config (benchmark)
        logs/<stage>[@<target>].log           what the stage's libraries printed (TensorFlow, absl, converters)
        results.json                          RunResults (report)
        report.md, plots/*.png                the human report (report)
        candidates.csv                        the selection's candidates, one row each (report)
        manifest.json                         digests of every file, written last (report): without it the
                                              run is incomplete
    <promotion uri>/                          what servers load as they are (promote; docs/gitops.md)
        promotion.json                        the current promotion (PromotionManifest), written last by
                                              compare-and-swap
        triton/<model>/config.pbtxt           a Triton model repository (ONNX, SavedModel, GraphDef, OpenVINO)
        triton/<model>/<version>/model.onnx | model.savedmodel/ | model.graphdef | model.xml + model.bin
        tfserving/<model>/<version>/saved_model.pb, variables/ | model.tflite   TF Serving's model base path
        kserve/...                            a KServe storageUri: the current version only, in the layout
                                              of the server KServe runs for the format (TF Serving or Triton)

Every module that reads or writes one of these keys takes it from here.
"""

from __future__ import annotations

import datetime as dt

from optismith import catalog, graphio
from optismith.storage import join_uri

STAGES_PREFIX = "stages/"
SAMPLE_INPUTS = "samples/inputs.npz"
SAMPLE_OUTPUTS = "samples/outputs.npz"
RESULTS = "results.json"
REPORT = "report.md"
CANDIDATES_CSV = "candidates.csv"
MANIFEST = "manifest.json"
PLOTS_PREFIX = "plots/"
LOGS_PREFIX = "logs/"
GRAPH_IO_FILE = graphio.IO_FILE
PROMOTION = "promotion.json"
TRITON = "triton"
TFSERVING = "tfserving"
KSERVE = "kserve"


def stage_record(stage: str, target: str | None = None) -> str:
    return f"{STAGES_PREFIX}{stage}@{target}.json" if target else f"{STAGES_PREFIX}{stage}.json"


def stage_log(stage: str, target: str | None = None) -> str:
    """What a stage's libraries wrote to stdout/stderr (the terminal shows only progress)."""
    return f"{LOGS_PREFIX}{stage}@{target}.log" if target else f"{LOGS_PREFIX}{stage}.log"


def variant_dir(name: str) -> str:
    return f"variants/{name}"


def variant_artifact(name: str) -> str:
    """The key of a variant's artifact (a file, or a directory such as a SavedModel)."""
    return catalog.get(name).key


def graph_io(name: str) -> str:
    """The io.json next to a GraphDef variant's .pb."""
    return f"{variant_dir(name)}/{GRAPH_IO_FILE}"


def raw_latencies(target: str, variant: str, batch: int) -> str:
    """Per-call latencies (ms, float64) of a variant's best config at a batch size."""
    return f"benchmarks/{target}/{variant}-b{batch}.npy"


def plot(name: str) -> str:
    return f"{PLOTS_PREFIX}{name}.png"


def triton_model(model: str, root: str = TRITON) -> str:
    """A model's directory in a Triton repository (config.pbtxt and the version directories)."""
    return f"{root}/{model}"


def triton_version(model: str, version: int, root: str = TRITON) -> str:
    return f"{triton_model(model, root)}/{version}"


def tfserving_version(model: str, version: int) -> str:
    """A version directory under TF Serving's model base path `tfserving/<model>`."""
    return f"{TFSERVING}/{model}/{version}"


def kserve_version(version: int) -> str:
    """A version directory directly under the KServe prefix (TF Serving's layout, model base path kserve/)."""
    return f"{KSERVE}/{version}"


# Records and logs the runner stores after the report stage has returned, so no manifest can cover them.
WRITTEN_AFTER_MANIFEST = frozenset({stage_record("report"), stage_record("promote"), stage_log("report"),
                                    stage_log("promote")})


def generation_run_id(generation: int) -> str:
    """The operator's run id: one run directory per generation of the resource."""
    return f"gen-{generation}"


def timestamp_run_id(now: dt.datetime | None = None) -> str:
    """`optismith run`'s default run id."""
    return (now or dt.datetime.now(dt.UTC)).strftime("run-%Y%m%d-%H%M%S")


def run_uri(output_uri: str, namespace: str | None, name: str, run_id: str) -> str:
    """Where a run directory lives: <output>/<namespace>/<name>/<run id> (no namespace outside a cluster)."""
    return join_uri(output_uri, *([namespace] if namespace else []), name, run_id)
