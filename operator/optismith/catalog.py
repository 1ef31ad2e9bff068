"""The variant catalog: every variant Optismith can build, as data.

One entry says everything the rest of the code needs to know about a variant: which runtime runs it,
which stage builds it and with which builder (a `module:callable` path, imported only when the variant
is built), the artifact's name under `variants/<name>/`, the builder's and the runtime's options, and
what it needs (calibration data, a GPU). The spec's enum and defaults, the CRD, docs/reference.md, the
plan and the build stages all read this table, so adding a variant is one entry here plus its builder.

Pure data: no imports beyond the standard library, so every layer may read it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

Options = Mapping[str, str]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    runtime: str  # key in optismith.runtimes
    stage: str  # the stage that builds it
    artifact: str  # file or directory name under variants/<name>/
    builder: str = ""  # "module:callable" the stage calls to build it; "" when the stage builds it itself
    options: Options = field(default_factory=lambda: MappingProxyType({}))  # passed to the builder
    runtime_options: Options = field(default_factory=lambda: MappingProxyType({}))  # passed to Runtime.load
    calibration: bool = False  # needs calibration data (static int8)
    gpu: bool = False  # runs only on a GPU target
    default: bool = True  # in spec.variants when the manifest leaves it out
    exact: bool = False  # a graph rewrite: rejected when outputs move beyond spec.optimize.maxAbsError
    # /proc/cpuinfo flags its precision needs to run fast, one requirement each ("a|b": either); measured
    # only where the measuring CPU has them, else skipped with the reason (optismith.measure.cpu_features)
    cpu_features: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The artifact's key in the run directory."""
        return f"variants/{self.name}/{self.artifact}"


BASELINE = "tf-savedmodel"

# The CPU flags that make a precision faster than f32 (oneDNN's bf16 dot products and tiles; int8 VNNI).
BF16_CPU = "avx512_bf16|amx_bf16"
INT8_CPU = "avx512_vnni|avx_vnni|amx_int8"

_TFLITE = "optismith.builders.tflite:build"
_ONNX = "optismith.builders.onnx:build"
_ONNX_TRANSFORMER = "optismith.builders.onnx_transformer:build"
# ONNX Runtime on a GPU (optismith.runtimes.onnx_cuda): inputs and outputs stay in GPU memory (IO binding),
# each batch size replays a captured CUDA graph, NHWC kernels (no transpose of tf2onnx's NHWC input), and
# cuDNN picks each convolution's algorithm by timing them all (EXHAUSTIVE). Measured on an H200
# (docs/benchmarks.md): the graph is what makes batch 1 fast (1.05 -> 0.44 ms on MobileNetV2), NHWC +30%
# and fused conv+bias +46% on ResNet50 fp16 at batch 256.
_CUDA = {"io": "device", "cuda.enable_cuda_graph": "1", "cuda.prefer_nhwc": "1",
         "cuda.cudnn_conv_algo_search": "EXHAUSTIVE"}

_ENTRIES: tuple[Variant, ...] = (
    Variant(BASELINE, "The source as TF Serving serves it: SavedModel signature, graph mode.",
            "tf-savedmodel", "inspect", "saved_model"),
    Variant("tf-frozen", "Variables folded into constants.", "tf-graphdef", "freeze", "frozen.pb", exact=True),
    Variant("tf-grappler", "Frozen graph after offline Grappler passes.", "tf-graphdef", "optimize",
            "optimized.pb", builder="optismith.builders.graph:grappler", exact=True),
    # XLA JIT is opt-in: measured 5-7x slower than the baseline on MobileNetV2 on CPU.
    Variant("tf-xla", "XLA jit_compile of the serving function (opt-in).", "tf-xla", "optimize", "saved_model",
            builder="optismith.builders.graph:xla", default=False, exact=True),
    Variant("tflite-fp32", "TFLite, float32.", "tflite", "quantize", "model.tflite", builder=_TFLITE,
            options=MappingProxyType({"quantization": "none"})),
    Variant("tflite-fp16", "TFLite, float16 weights.", "tflite", "quantize", "model.tflite", builder=_TFLITE,
            options=MappingProxyType({"quantization": "float16"})),
    Variant("tflite-dynamic-int8", "TFLite, int8 weights, dynamic-range activations.", "tflite", "quantize",
            "model.tflite", builder=_TFLITE, options=MappingProxyType({"quantization": "dynamic-int8"})),
    Variant("tflite-int8", "TFLite, full int8 with float input/output.", "tflite", "quantize", "model.tflite",
            builder=_TFLITE, options=MappingProxyType({"quantization": "int8", "io": "float"}), calibration=True),
    Variant("tflite-int8-io", "TFLite, full int8 with int8 input/output.", "tflite", "quantize", "model.tflite",
            builder=_TFLITE, options=MappingProxyType({"quantization": "int8", "io": "int8"}), calibration=True),
    # Opt-in: it searches (several int8 rebuilds) only where full int8 fails the gate; skipped where it passes.
    Variant("tflite-int8-mixed", "TFLite int8 with the most sensitive layers (QuantizationDebugger RMSE/scale) "
            "kept in float until the accuracy gate passes, within spec.calibration.mixedPrecision (opt-in).",
            "tflite", "quantize", "model.tflite", builder="optismith.builders.tflite_mixed:build",
            calibration=True, default=False),
    Variant("onnx-fp32", "ONNX Runtime, float32.", "onnxruntime", "convert", "model.onnx", builder=_ONNX,
            options=MappingProxyType({"quantization": "none"})),
    Variant("onnx-int8", "ONNX Runtime, static QDQ per-channel int8.", "onnxruntime", "convert", "model.onnx",
            builder=_ONNX, options=MappingProxyType({"quantization": "static-int8"}), calibration=True),
    # Transformer encoders (optismith.builders.onnx_transformer): skipped with the reason on models where ONNX
    # Runtime's transformer optimizer fuses nothing.
    Variant("onnx-transformer-fp32", "ONNX Runtime, float32, after its transformer optimizer (Attention, "
            "LayerNorm, GELU fusions).", "onnxruntime", "convert", "model.onnx", builder=_ONNX_TRANSFORMER,
            options=MappingProxyType({"graph": "fused", "quantization": "none"})),
    Variant("onnx-dynamic-int8", "ONNX Runtime, dynamic int8 (int8 MatMul weights, activations quantized at run "
            "time; transformers).", "onnxruntime", "convert", "model.onnx", builder=_ONNX_TRANSFORMER,
            options=MappingProxyType({"graph": "plain", "quantization": "dynamic-int8"})),
    Variant("onnx-transformer-dynamic-int8", "ONNX Runtime, transformer optimizer then dynamic int8.",
            "onnxruntime", "convert", "model.onnx", builder=_ONNX_TRANSFORMER,
            options=MappingProxyType({"graph": "fused", "quantization": "dynamic-int8"})),
    Variant("onnx-int8-mixed", "ONNX Runtime static QDQ int8 with the most sensitive nodes (qdq_loss_debug SQNR "
            "lost) left in float until the accuracy gate passes, within spec.calibration.mixedPrecision (opt-in).",
            "onnxruntime", "convert", "model.onnx", builder="optismith.builders.onnx_mixed:build",
            calibration=True, default=False),
    # A directory: the IR is model.xml plus model.bin, and both must travel together.
    Variant("openvino-fp32", "OpenVINO IR (model.xml + model.bin), float32.", "openvino", "convert", "ir",
            builder="optismith.builders.openvino:build", options=MappingProxyType({"precision": "f32"}),
            runtime_options=MappingProxyType({"precision": "f32"})),
    # OpenVINO's CPU default on CPUs with bf16 support: the same f32 IR, computed in bf16 (the hint).
    Variant("openvino-bf16", "OpenVINO IR (f32 weights) computed in bf16 (INFERENCE_PRECISION_HINT=bf16).",
            "openvino", "convert", "ir", builder="optismith.builders.openvino:build",
            options=MappingProxyType({"precision": "bf16"}), runtime_options=MappingProxyType({"precision": "bf16"}),
            cpu_features=(BF16_CPU,)),
    # The float ops NNCF keeps (accuracy control) compute in f32, as NNCF validated them.
    Variant("openvino-int8", "OpenVINO IR quantized by NNCF post-training int8 (accuracy control under the "
            "agreement gate when plain quantization fails it).", "openvino", "convert", "ir",
            builder="optismith.builders.openvino_int8:build", options=MappingProxyType({"precision": "int8"}),
            runtime_options=MappingProxyType({"precision": "f32"}), calibration=True, cpu_features=(INT8_CPU,)),
    # On a GPU target, onnx-fp32 runs on the CUDA provider with ONNX Runtime's defaults, host-bound: the
    # reference when the image has no GPU TensorFlow (the benchmark stage says so in its record).
    Variant("onnx-cuda-fp32", "ONNX Runtime CUDA, strict IEEE fp32 (use_tf32=0), NHWC, device-resident I/O, "
            "CUDA graphs (GPU targets).", "onnxruntime", "convert", "model.onnx", builder=_ONNX,
            options=MappingProxyType({"quantization": "none"}),
            runtime_options=MappingProxyType({**_CUDA, "cuda.use_tf32": "0"}), gpu=True),
    # TF32 (ONNX Runtime's own default) rounds matmul/conv inputs to 10 mantissa bits: a separate variant,
    # kept only when it passes the accuracy gate like any other.
    Variant("onnx-cuda-tf32", "ONNX Runtime CUDA, TF32 tensor cores (use_tf32=1), NHWC, device-resident I/O, "
            "CUDA graphs (GPU targets).", "onnxruntime", "convert", "model.onnx", builder=_ONNX,
            options=MappingProxyType({"quantization": "none"}),
            runtime_options=MappingProxyType({**_CUDA, "cuda.use_tf32": "1"}), gpu=True),
    Variant("onnx-cuda-fp16", "ONNX Runtime CUDA, float16 weights and compute (float32 I/O), NHWC, "
            "device-resident I/O, CUDA graphs (GPU targets).", "onnxruntime", "convert", "model.onnx",
            builder=_ONNX, options=MappingProxyType({"quantization": "float16"}),
            runtime_options=MappingProxyType(_CUDA), gpu=True),
    Variant("onnx-cuda-fp16-fused", "onnx-cuda-fp16 with cuDNN's fused conv+bias+activation "
            "(fuse_conv_bias=1): the large-batch variant (GPU targets).", "onnxruntime", "convert", "model.onnx",
            builder=_ONNX, options=MappingProxyType({"quantization": "float16"}),
            runtime_options=MappingProxyType({**_CUDA, "cuda.fuse_conv_bias": "1"}), gpu=True),
    # Needs TensorRT 10 (libnvinfer.so.10) on the node; skipped with that reason where it is missing, since
    # ONNX Runtime would otherwise fall back to the CUDA provider without saying so.
    Variant("onnx-tensorrt-fp16", "ONNX Runtime TensorRT provider, fp16 (what TensorRT does not take runs on "
            "CUDA; GPU targets with TensorRT 10).", "onnxruntime", "convert", "model.onnx", builder=_ONNX,
            options=MappingProxyType({"quantization": "none"}),
            runtime_options=MappingProxyType({"ep": "tensorrt", "tensorrt.trt_fp16_enable": "1"}), gpu=True),
    Variant("tftrt-fp16", "TF-TRT, float16 (GPU targets).", "tf-savedmodel", "convert", "saved_model",
            builder="optismith.builders.tftrt:build", options=MappingProxyType({"precision": "FP16"}), gpu=True),
    Variant("tftrt-int8", "TF-TRT, int8 (GPU targets).", "tf-savedmodel", "convert", "saved_model",
            builder="optismith.builders.tftrt:build", options=MappingProxyType({"precision": "INT8"}), gpu=True,
            calibration=True),
)

_CATALOG: dict[str, Variant] = {entry.name: entry for entry in _ENTRIES}


def names() -> list[str]:
    """Every variant, in catalog order (the order variants are built and reported in)."""
    return list(_CATALOG)


def default_names() -> list[str]:
    return [entry.name for entry in _CATALOG.values() if entry.default]


def get(name: str) -> Variant:
    try:
        return _CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(_CATALOG)}") from None


def find(name: str) -> Variant | None:
    return _CATALOG.get(name)


def built_by(stage: str, requested: Iterable[str] | None = None) -> list[Variant]:
    """The variants `stage` builds, in catalog order; only those in `requested` when it is given."""
    wanted = None if requested is None else set(requested)
    return [v for v in _CATALOG.values() if v.stage == stage and (wanted is None or v.name in wanted)]


def building_stages() -> list[str]:
    """Stages that build variants, in the order of their first variant."""
    return list(dict.fromkeys(v.stage for v in _CATALOG.values()))


@contextlib.contextmanager
def extended(*entries: Variant) -> Iterator[None]:
    """The catalog with `entries` added, for as long as the block runs (tests and plugins in-process)."""
    added = [entry for entry in entries if entry.name not in _CATALOG]
    clashes = [entry.name for entry in entries if entry not in added]
    if clashes:
        raise ValueError(f"variants already in the catalog: {clashes}")
    for entry in added:
        _CATALOG[entry.name] = entry
    try:
        yield
    finally:
        for entry in added:
            _CATALOG.pop(entry.name, None)
