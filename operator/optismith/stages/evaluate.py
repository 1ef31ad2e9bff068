"""The evaluate stage: how much accuracy each variant gives up, per target.

With labelled data (`evaluation.uri` with `x` and `y`) the metric is top-1 accuracy and the drop is the
baseline's accuracy minus the variant's. Without labels, variants are compared to the baseline's outputs
on the same inputs: the metric is top-1 agreement (per pixel or token for dense predictions such as
segmentation maps; cosine similarity for outputs that are not class scores) and the drop is 1 - agreement.

The reference outputs are the baseline's (TensorFlow's), computed here. On a GPU target whose image has no
TensorFlow that sees the GPU they come from elsewhere, and the record says from where (payload "reference"):
  * no evaluation.uri: the evaluation inputs are the inspect stage's samples, and the prepare phase recorded
    TensorFlow's outputs on them (samples/outputs.npz): the same reference as on a CPU target;
  * an evaluation.uri: the onnx-fp32 artifact on the CUDA provider in strict IEEE fp32 (use_tf32=0). Its
    agreement with TensorFlow was checked when it was built, on the samples (its numerics, copied into the
    payload); with labels, the baseline's accuracy is this reference's.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optismith import catalog, tensors
from optismith.errors import DataError, StageError
from optismith.measure.host import default_threads
from optismith.models.data import load_labelled
from optismith.models.gate import agreement
from optismith.models.numerics import compare_outputs
from optismith.results import Accuracy, SourceInfo, StageRecord
from optismith.runs import layout
from optismith.runs.eligibility import device_of, load_options, resolve
from optismith.runs.stage import Stage, StageContext, new_record
from optismith.runtimes import IOSpec, Runtime
from optismith.spec import BASELINE_VARIANT, LimitsSpec, StorageSpec

SYNTHETIC_SAMPLES = 64
GPU_REFERENCE = "onnx-fp32"
STRICT_FP32 = {"cuda.use_tf32": "0"}  # ONNX Runtime's CUDA default is TF32


@dataclass(frozen=True)
class EvaluationData:
    inputs: dict[str, np.ndarray]  # by input name
    labels: np.ndarray | None  # class ids, one per sample
    description: str

    @property
    def count(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def load_evaluation_npz(uri: str, storage: StorageSpec, inputs: Sequence[IOSpec], limit: int,
                        limits: LimitsSpec | None = None) -> EvaluationData:
    """At most `limit` samples of `x` (or one array per input) and the optional labels `y` of an .npz."""
    arrays, labels = load_labelled(uri, storage, inputs, limit, limits=limits)
    features = {spec.name: array for spec, array in zip(inputs, arrays, strict=True)}
    count = int(arrays[0].shape[0])
    return EvaluationData(features, labels, f"{count} samples from {uri}")


def predict(runtime: type[Runtime], artifact: Path, data: EvaluationData, *, threads: int,
            batch: int, options: dict[str, Any] | None = None) -> list[np.ndarray]:
    """All outputs for all samples, computed `batch` samples at a time, or at the artifact's own batch size
    when it has a fixed one (TFLite of recurrent models: builders/tflite_fixed_batch.py)."""
    session = runtime.load(artifact, threads=threads, options=options)
    try:
        aligned = tensors.align(data.inputs, session.inputs)
        fixed = session.fixed_batch
        step = fixed or batch
        chunks: list[list[np.ndarray]] = []
        for start in range(0, data.count, step):
            feeds = [a[start:start + step] for a in aligned]
            short = step - len(feeds[0]) if fixed else 0  # a fixed batch's last chunk: pad, then drop the pad
            feeds = [np.concatenate([f, np.repeat(f[-1:], short, axis=0)]) if short else f for f in feeds]
            chunks.append([np.asarray(o)[:step - short] for o in session.run(feeds)])
        return [np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))]
    finally:
        session.close()
        gc.collect()


def top1_accuracy(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
    scores = np.asarray(outputs[0])
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise DataError(f"top-1 accuracy needs class scores of shape [samples, classes]; the first output "
                        f"has shape {list(scores.shape)}",
                        fix="evaluate without labels (drop 'y') to compare outputs with the baseline instead")
    return float(np.mean(scores.argmax(axis=1) == labels))


def _model_inputs(ctx: StageContext, runtime: type[Runtime] | None, baseline_path: Path) -> list[IOSpec]:
    """The source model's inputs, as the inspect stage recorded them (else as the baseline loads)."""
    if ctx.has_record("inspect") and "source" in ctx.record("inspect").payload:
        source = SourceInfo.model_validate(ctx.record("inspect").payload["source"])
        return [IOSpec(t.name, t.dtype, tuple(t.shape)) for t in source.inputs]
    if runtime is None:
        raise StageError("the inspect stage recorded no model inputs, and the baseline cannot run here",
                         where=ctx.store.uri, fix="run the inspect stage again")
    session = runtime.load(baseline_path, threads=1)
    try:
        return list(session.inputs)
    finally:
        session.close()


class EvaluateStage(Stage):
    name = "evaluate"
    requires = ("inspect",)
    per_target = True

    def run(self, ctx: StageContext) -> StageRecord:
        spec = ctx.spec
        target = ctx.target_name
        variants = ctx.variants()
        baseline = next((v for v in variants if v.name == BASELINE_VARIANT), None)
        if baseline is None:
            raise StageError(f"the baseline {BASELINE_VARIANT} was not recorded by any build stage",
                             where=ctx.store.uri, fix="run the inspect stage first")
        baseline_runtime, why = resolve(baseline, ctx.target)
        if baseline_runtime is None and device_of(ctx.target) != "gpu":
            raise StageError(f"the baseline {BASELINE_VARIANT} cannot run here: {why}", where=ctx.store.uri,
                             fix="accuracy drops are measured against the baseline: run with TensorFlow")
        threads = max(spec.benchmark.threads or default_threads())
        batch = max(spec.benchmark.batch_sizes)
        # Without a runtime for it, the baseline's SavedModel is not even fetched (a GPU worker may lack TF).
        baseline_path = ctx.fetch(baseline.artifact or "") if baseline_runtime is not None else Path()
        data = self._data(ctx, baseline_runtime, baseline_path)
        ctx.progress(f"evaluating on {data.description}")
        reference_note: dict[str, Any] = {"variant": BASELINE_VARIANT, "source": "computed here"}
        try:
            if baseline_runtime is not None:
                reference = predict(baseline_runtime, baseline_path, data, threads=threads, batch=batch,
                                    options=load_options(catalog.get(catalog.BASELINE), spec, ctx.target))
            else:
                reference, reference_note = self._reference_without_baseline(ctx, variants, data, why,
                                                                             threads=threads, batch=batch)
        except (DataError, StageError):
            raise
        except Exception as error:
            raise StageError(f"the baseline failed on the evaluation data: {type(error).__name__}: {error}",
                             where=ctx.store.key_uri(baseline.artifact or ""),
                             fix="check that the data's shapes and dtypes match the model's inputs") from error
        baseline_value = top1_accuracy(reference, data.labels) if data.labels is not None else None
        results: list[Accuracy] = []
        skipped: dict[str, str] = {}
        failed: dict[str, str] = {}
        if reference_note["variant"] == BASELINE_VARIANT:  # the reference is the baseline's own outputs
            results.append(self._accuracy(baseline.name, target, data, reference, reference, baseline_value))
        else:
            skipped[BASELINE_VARIANT] = why
        for variant in variants:
            if variant.name == BASELINE_VARIANT or variant.status != "built":
                continue
            runtime, why = resolve(variant, ctx.target)
            if runtime is None:
                skipped[variant.name] = why
                continue
            try:
                entry = catalog.find(variant.name)
                outputs = predict(runtime, ctx.fetch(variant.artifact or ""), data, threads=threads, batch=batch,
                                  options=load_options(entry, spec, ctx.target) if entry else None)
                results.append(self._accuracy(variant.name, target, data, reference, outputs, baseline_value))
            except Exception as error:
                failed[variant.name] = f"{type(error).__name__}: {error}"[:2000]
                continue
            ctx.progress(f"{variant.name}: {results[-1].metric} {results[-1].value:.4f} "
                         f"(drop {results[-1].drop * 100:+.2f}%)")
        message = f"evaluated {len(results)} variant(s) on {data.description}"
        if data.labels is None:
            message += "; no labels, so variants are compared with the baseline's outputs (agreement)"
        return new_record(ctx, "evaluate", message=message, accuracy=results, payload={
            "data": {"description": data.description, "samples": data.count, "labelled": data.labels is not None,
                     "uri": spec.evaluation.uri, "batch_size": batch, "threads": threads},
            "skipped": skipped, "failed": failed, "reference": reference_note,
        })

    @staticmethod
    def _reference_without_baseline(ctx: StageContext, variants: list[Any], data: EvaluationData, why: str, *,
                                    threads: int, batch: int) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Reference outputs on a GPU target where the baseline cannot run (see the module docstring)."""
        spec = ctx.spec
        recorded = ctx.read_arrays(layout.SAMPLE_OUTPUTS) if not spec.evaluation.uri else None
        if recorded is not None:
            outputs = [array[:data.count] for array in recorded.values()]
            source = f"TensorFlow's outputs on the samples, recorded by inspect ({layout.SAMPLE_OUTPUTS})"
            return outputs, {"variant": BASELINE_VARIANT, "baseline_skipped": why, "source": source}
        fallback = next((v for v in variants if v.name == GPU_REFERENCE and v.status == "built"), None)
        runtime, fallback_why = resolve(fallback, ctx.target) if fallback else (None, f"{GPU_REFERENCE} not built")
        if fallback is None or runtime is None:
            raise StageError(f"no reference on this GPU: the baseline {BASELINE_VARIANT} cannot run ({why}), nor "
                             f"can {GPU_REFERENCE} ({fallback_why})", where=ctx.store.uri,
                             fix="use a GPU image with onnxruntime-gpu (or a GPU TensorFlow) and build onnx-fp32")
        options = {**load_options(catalog.get(GPU_REFERENCE), spec, ctx.target), **STRICT_FP32}
        outputs = predict(runtime, ctx.fetch(fallback.artifact or ""), data, threads=threads, batch=batch,
                          options=options)
        checked = fallback.numerics.model_dump() if fallback.numerics else None
        return outputs, {"variant": f"{GPU_REFERENCE} (CUDA, strict fp32: use_tf32=0)", "baseline_skipped": why,
                         "source": "computed here", "checked_against_tf_at_build": checked}

    @staticmethod
    def _data(ctx: StageContext, runtime: type[Runtime] | None, baseline_path: Path) -> EvaluationData:
        spec = ctx.spec
        if spec.evaluation.uri:
            inputs = _model_inputs(ctx, runtime, baseline_path)
            return load_evaluation_npz(spec.evaluation.uri, spec.storage, inputs, spec.evaluation.samples,
                                       spec.limits)
        samples = ctx.read_arrays(layout.SAMPLE_INPUTS)
        if samples is not None:
            count = min(next(iter(samples.values())).shape[0], spec.evaluation.samples)
            arrays = {name: array[:count] for name, array in samples.items()}
            return EvaluationData(arrays, None, f"the inspect stage's {count} sample inputs (no evaluation.uri)")
        inputs = _model_inputs(ctx, runtime, baseline_path)
        return EvaluationData(tensors.synthetic(inputs, SYNTHETIC_SAMPLES), None,
                              f"{SYNTHETIC_SAMPLES} random inputs (no evaluation.uri and no saved samples)")

    @staticmethod
    def _accuracy(variant: str, target: str, data: EvaluationData, reference: list[np.ndarray],
                  outputs: list[np.ndarray], baseline_value: float | None) -> Accuracy:
        numerics = compare_outputs(reference, outputs)
        if data.labels is not None and baseline_value is not None:
            value = top1_accuracy(outputs, data.labels)
            return Accuracy(variant=variant, target=target, metric="top1", value=value,
                            drop=baseline_value - value, samples=data.count, labelled=True, numerics=numerics)
        metric, value = agreement(numerics)
        return Accuracy(variant=variant, target=target, metric=metric, value=value, drop=1.0 - value,
                        samples=data.count, labelled=False, numerics=numerics)

