"""ONNX Runtime variants for transformer encoders (catalog options: `graph` plain / fused, `quantization`
none / dynamic-int8).

`fused` is the float ONNX model converted for fusion (tf2onnx with its Einsum decomposition and
global-pool rewrite off, then `onnx_canonical`'s rewrites) and run through ONNX Runtime's transformer
optimizer (`onnxruntime.transformers.optimizer`, model type `bert`: Attention, SkipLayerNormalization,
Gelu/BiasGelu fusions; head count and hidden size detected from the graph). `plain` is the onnx-fp32 model.
`dynamic-int8` is ONNX Runtime's recipe for transformers: int8 weights for MatMul/Gemm/Attention with a
constant weight, activations quantized at run time per batch (no calibration data).

On a model where the optimizer fuses nothing (a CNN, an MLP) these variants are skipped with that reason:
the fused model would be onnx-fp32 again, and dynamic quantization measured 3-4x slower than float on CNNs
(onnx-int8, static, is the int8 variant there).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optismith import catalog
from optismith.builders.base import BuildInputs, Unavailable, first_meaningful_line
from optismith.builders.onnx import float_onnx, frozen_graph_to_onnx
from optismith.builders.onnx_canonical import canonicalize

# tf2onnx optimizers whose output no ONNX Runtime fusion matches: Einsum decomposed into Shape/Gather/
# ReduceProd/Reshape chains, and a last-axis ReduceMean (LayerNorm's mean) written as GlobalAveragePool.
_UNFUSABLE_TF2ONNX_OPTIMIZERS = ("einsum_optimizer", "global_pool_optimizer")
_QUANTIZED_OPS = ["MatMul", "Gemm", "Attention"]


def build(inputs: BuildInputs, variant: catalog.Variant, artifact: Path) -> dict[str, Any]:
    fused, fusion = fused_onnx(inputs)
    if not any(fusion["fused"].values()):
        raise Unavailable("no transformer pattern found: ONNX Runtime's transformer optimizer fused nothing "
                          "(no Attention, LayerNormalization or GELU), so this would be onnx-fp32 again; dynamic "
                          "int8 is its recipe for transformers (onnx-int8 is the static int8 variant)")
    source, details = (fused, fusion) if variant.options["graph"] == "fused" else float_onnx(inputs)
    artifact.parent.mkdir(parents=True, exist_ok=True)
    if variant.options["quantization"] == "dynamic-int8":
        return {**{k: v for k, v in details.items() if k != "op_count"},
                **quantize_dynamic_int8(source, artifact)}
    import shutil

    shutil.copyfile(source, artifact)
    return dict(details)


@contextlib.contextmanager
def _tf2onnx_without(names: tuple[str, ...]) -> Iterator[None]:
    """tf2onnx's optimizer table (a module global) without `names`, for one conversion."""
    from tf2onnx import optimizer

    table = optimizer._optimizers
    removed = {name: table.pop(name) for name in names if name in table}
    try:
        yield
    finally:
        table.update(removed)


def fusable_onnx(inputs: BuildInputs) -> tuple[Path, dict[str, Any]]:
    """The float ONNX model converted and canonicalised for the transformer fusions (once per stage)."""
    import onnx

    def convert() -> tuple[Path, dict[str, Any]]:
        graph_def, io, _ = inputs.frozen()
        path = inputs.ctx.scratch("onnx-fusable") / "model.onnx"
        with _tf2onnx_without(_UNFUSABLE_TF2ONNX_OPTIMIZERS):
            details = frozen_graph_to_onnx(graph_def.SerializeToString(), io, path)
        model = onnx.load(str(path))
        rewrites = canonicalize(model)
        onnx.save(model, str(path))
        return path, {**details, "canonical_rewrites": rewrites, "op_count": len(model.graph.node)}

    path, details = inputs.shared("fusable ONNX model", convert)
    return path, dict(details)


def fused_onnx(inputs: BuildInputs) -> tuple[Path, dict[str, Any]]:
    """The fusable model after ONNX Runtime's transformer optimizer, and which fusions it made."""
    def optimize() -> tuple[Path, dict[str, Any]]:
        source, details = fusable_onnx(inputs)
        path = inputs.ctx.scratch("onnx-fused") / "model.onnx"
        return path, {**details, **optimize_transformer(source, path)}

    path, details = inputs.shared("fused transformer ONNX model", optimize)
    return path, dict(details)


def optimize_transformer(source: Path, path: Path) -> dict[str, Any]:
    """ONNX Runtime's transformer optimizer, Python fusions only (opt_level 0: the runtime's own graph
    optimizations run when the session loads, for the CPU it runs on)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0,
                                   optimization_options=FusionOptions("bert"), opt_level=0)
    except Exception as error:
        # Measured on EfficientNetB0: the QuickGelu fusion reads a squeeze-excite Mul's per-channel constant
        # as a scalar and raises. A fusion that crashes found no transformer pattern it could fuse.
        frames = traceback.extract_tb(error.__traceback__)
        where = next((Path(f.filename).stem for f in reversed(frames) if "transformers" in f.filename), "optimizer")
        raise Unavailable(f"ONNX Runtime's transformer optimizer cannot process this model ({where}: "
                          f"{first_meaningful_line(error)}); onnx-fp32 and onnx-int8 are the ONNX variants here"
                          ) from error
    path.parent.mkdir(parents=True, exist_ok=True)
    optimized.save_model_to_file(str(path))
    fused = {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}
    return {"optimizer": "onnxruntime.transformers.optimizer (model_type bert, opt_level 0)", "fused": fused,
            "op_count": len(optimized.model.graph.node)}


def quantize_dynamic_int8(source: Path, artifact: Path) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # DefaultTensorType: ONNX shape inference gives no type to outputs of ONNX Runtime's fused ops
    # (com.microsoft), and the quantizer needs one for the MatMuls they feed.
    quantize_dynamic(str(source), str(artifact), op_types_to_quantize=_QUANTIZED_OPS, weight_type=QuantType.QInt8,
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"quantization": "dynamic int8: int8 weights of MatMul/Gemm/Attention, activations quantized at run "
                            "time", "op_count": len(onnx.load(str(artifact), load_external_data=False).graph.node)}
