"""What the variant-building stages (quantize, convert) share: the reference samples every variant is
checked against, the calibration data, and building one variant without letting its failure fail
the stage."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optismith.errors import DataError
from optismith.models.data import load_samples, synthetic_samples
from optismith.models.numerics import compare_outputs
from optismith.results import Numerics, TensorInfo, VariantRecord
from optismith.runtimes.base import Runtime, Session
from optismith.stages.base import StageContext
from optismith.stages.variants import CATALOG, variant_key

SAMPLE_INPUTS_KEY = "samples/inputs.npz"
SAMPLE_OUTPUTS_KEY = "samples/outputs.npz"
FROZEN_IO_KEY = "variants/tf-frozen/io.json"
NO_CALIBRATION_REASON = "needs calibration data: set spec.calibration.uri or calibration.synthetic: true"
SYNTHETIC_SEED = 0
_NUMERICS_BATCH = 32  # bounds memory when the samples are many or large
_MLIR_LOCATION = re.compile(r"^loc\(.*?\):\s+")  # 'loc(callsite(fused[...])): <message>'

Build = Callable[[Path], dict[str, Any]]  # writes the artifact at the path, returns details


@dataclass(frozen=True)
class Reference:
    """The source model's inputs and outputs, and its outputs on the sample inputs."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    sample_inputs: list[np.ndarray]  # in `inputs` order
    sample_outputs: list[np.ndarray]  # in `outputs` order


@dataclass(frozen=True)
class Calibration:
    source: Literal["file", "synthetic", "none"]
    uri: str | None
    names: list[str]
    arrays: list[np.ndarray]  # one per name, samples first
    problem: str | None = None  # why there is none although synthetic data was allowed

    @property
    def available(self) -> bool:
        return self.source != "none"

    @property
    def unavailable_reason(self) -> str:
        return self.problem or NO_CALIBRATION_REASON

    @property
    def samples(self) -> int:
        return int(self.arrays[0].shape[0]) if self.arrays else 0

    def describe(self) -> str:
        """What a variant's details["calibration"] says: "synthetic" or the file's URI."""
        return "synthetic" if self.source == "synthetic" else str(self.uri)

    def payload(self) -> dict[str, Any]:
        return {"source": self.source, "uri": self.uri, "samples": self.samples}

    def batches(self, batch_size: int, *, complete_only: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """Batches keyed by input name; `complete_only` drops a short last batch (fixed-batch models)."""
        for start in range(0, self.samples, batch_size):
            if complete_only and start + batch_size > self.samples:
                return
            yield {name: array[start:start + batch_size] for name, array in zip(self.names, self.arrays,
                                                                               strict=True)}


def load_reference(ctx: StageContext) -> Reference:
    """Sample inputs and the baseline's outputs (written by inspect); shapes from the frozen graph's
    io.json when freeze wrote one, since it keeps dynamic dimensions the samples cannot show."""
    sample_inputs = _read_npz(ctx, SAMPLE_INPUTS_KEY)
    sample_outputs = _read_npz(ctx, SAMPLE_OUTPUTS_KEY)
    if ctx.store.exists(FROZEN_IO_KEY):
        described = json.loads(ctx.store.read_bytes(FROZEN_IO_KEY))
        inputs = [_tensor_info(item) for item in described["inputs"]]
        outputs = [_tensor_info(item) for item in described["outputs"]]
    else:
        inputs = [_info_from_array(name, array) for name, array in sample_inputs.items()]
        outputs = [_info_from_array(name, array) for name, array in sample_outputs.items()]
    return Reference(
        inputs=inputs,
        outputs=outputs,
        sample_inputs=[_by_name(sample_inputs, info.name, SAMPLE_INPUTS_KEY) for info in inputs],
        sample_outputs=[_by_name(sample_outputs, info.name, SAMPLE_OUTPUTS_KEY) for info in outputs],
    )


def resolve_calibration(ctx: StageContext, inputs: Sequence[TensorInfo]) -> Calibration:
    """The spec's calibration file (a DataError if it does not fit the model), else synthetic data when
    allowed and possible, else none."""
    spec = ctx.spec.calibration
    names = [info.name for info in inputs]
    if spec.uri:
        ctx.progress(f"loading calibration data from {spec.uri}")
        arrays = load_samples(spec.uri, ctx.spec.storage, inputs, spec.samples)
        return Calibration("file", spec.uri, names, arrays)
    if spec.synthetic:
        try:
            arrays = synthetic_samples(inputs, spec.samples, SYNTHETIC_SEED)
        except DataError as error:  # only the int8 variants need it: they are skipped, the rest still build
            return Calibration("none", None, names, [], problem=f"needs calibration data: {error.message}")
        return Calibration("synthetic", None, names, arrays)
    return Calibration("none", None, names, [])


def build_variant(ctx: StageContext, name: str, build: Build, runtime: type[Runtime],
                  reference: Reference, *, built_by: str) -> VariantRecord:
    """Build, check numerics on the samples, publish. A failure becomes the variant's status, never
    the stage's."""
    info = CATALOG[name]
    ctx.progress(f"building {name}")
    artifact = ctx.scratch(name) / info.artifact
    started = time.perf_counter()
    try:
        details = build(artifact)
    except Exception as error:
        return VariantRecord(name=name, runtime=info.runtime, status="failed", built_by=built_by,
                             build_seconds=time.perf_counter() - started, reason=first_meaningful_line(error))
    build_seconds = time.perf_counter() - started
    size = ctx.publish(variant_key(name), artifact)
    record = VariantRecord(name=name, runtime=info.runtime, status="built", built_by=built_by,
                           artifact=variant_key(name), size_bytes=size, build_seconds=build_seconds,
                           op_count=details.pop("op_count", None), details=details)
    try:
        numerics, finite = measure_numerics(runtime, artifact, reference)
    except Exception as error:
        reason = f"built, but {runtime.name} cannot run it: {first_meaningful_line(error)}"
        return record.model_copy(update={"status": "failed", "reason": reason})
    record = record.model_copy(update={"numerics": numerics})
    if not finite:
        reason = "outputs NaN or infinite values on the sample inputs"
        return record.model_copy(update={"status": "rejected", "reason": reason})
    return record


def skipped(name: str, reason: str, *, built_by: str) -> VariantRecord:
    return VariantRecord(name=name, runtime=CATALOG[name].runtime, status="skipped", reason=reason,
                         built_by=built_by)


def measure_numerics(runtime: type[Runtime], artifact: Path, reference: Reference) -> tuple[Numerics, bool]:
    """Numerics of the artifact's outputs vs the baseline's on the samples, and whether all were finite."""
    session = runtime.load(artifact, threads=min(2, os.cpu_count() or 1))
    try:
        outputs = run_in_batches(session, _feeds_for(session, reference))
    finally:
        session.close()
    ordered = _outputs_for(session, reference, outputs)
    finite = all(bool(np.all(np.isfinite(o))) for o in ordered if np.asarray(o).dtype.kind == "f")
    return compare_outputs(reference.sample_outputs, ordered), finite


def run_in_batches(session: Session, feeds: list[np.ndarray]) -> list[np.ndarray]:
    total = len(feeds[0])
    fixed = session.inputs[0].shape[0] if session.inputs and session.inputs[0].shape else None
    batch = fixed if fixed else min(total, _NUMERICS_BATCH)
    if fixed and total % fixed:
        raise ValueError(f"{total} samples do not split into the model's fixed batch size {batch}")
    chunks = [session.run([f[start:start + batch] for f in feeds]) for start in range(0, total, batch)]
    return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]


def first_meaningful_line(error: BaseException) -> str:
    """Converter errors run to pages of MLIR locations and stack frames; keep the line that says what
    went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    noise = ("Traceback", "File ", "^", "<unknown>:0: note", "note:", "Exception encountered", "---")
    useful = [line for line in lines if not line.startswith(noise)]
    flagged = [line for line in useful if "error:" in line.lower()]
    chosen = (flagged or useful or [type(error).__name__])[0]
    chosen = chosen.split("error: ", 1)[-1] if "error: " in chosen else chosen
    chosen = _MLIR_LOCATION.sub("", chosen)
    return f"{type(error).__name__}: {chosen}"[:400]


# --- name matching ------------------------------------------------------------------------------


def bare_name(name: str) -> str:
    """'image:0' -> 'image'."""
    head, sep, tail = name.rpartition(":")
    return head if sep and tail.isdigit() else name


def _match(names: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Index into `names` for every wanted name: exact, then without the ':0' suffix, then by position
    when the counts agree and nothing matched by name."""
    by_exact = {n: i for i, n in enumerate(names)}
    by_bare = {bare_name(n): i for i, n in enumerate(names)}
    found = [by_exact.get(w, by_bare.get(bare_name(w))) for w in wanted]
    if all(i is not None for i in found):
        return [int(i) for i in found if i is not None]
    if len(names) == len(wanted) and all(i is None for i in found):
        return list(range(len(names)))
    missing = [w for w, i in zip(wanted, found, strict=True) if i is None]
    raise ValueError(f"the variant has no tensors named {missing}; it has {list(names)}")


def _feeds_for(session: Session, reference: Reference) -> list[np.ndarray]:
    order = _match([info.name for info in reference.inputs], [spec.name for spec in session.inputs])
    return [reference.sample_inputs[i] for i in order]


def _outputs_for(session: Session, reference: Reference, outputs: list[np.ndarray]) -> list[np.ndarray]:
    order = _match([spec.name for spec in session.outputs], [info.name for info in reference.outputs])
    return [outputs[i] for i in order]


# --- reading ------------------------------------------------------------------------------------


def _read_npz(ctx: StageContext, key: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(ctx.store.read_bytes(key)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _by_name(arrays: dict[str, np.ndarray], name: str, key: str) -> np.ndarray:
    for candidate in (name, bare_name(name)):
        if candidate in arrays:
            return arrays[candidate]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise ValueError(f"{key} has no array named {name!r}; it has {sorted(arrays)}")


def _tensor_info(item: dict[str, Any]) -> TensorInfo:
    shape = [None if d is None or int(d) < 0 else int(d) for d in item["shape"]]
    return TensorInfo(name=str(item["name"]), dtype=str(item["dtype"]), shape=shape)


def _info_from_array(name: str, array: np.ndarray) -> TensorInfo:
    return TensorInfo(name=name, dtype=array.dtype.name, shape=[None, *(int(d) for d in array.shape[1:])])

