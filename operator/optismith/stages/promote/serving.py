"""Serving layouts: where each file of a promoted artifact goes so that the common servers load the
promotion URI as it is.

    savedmodel  triton/<model>/<v>/model.savedmodel/   tfserving/<model>/<v>/      kserve/<v>/ (TF Serving)
    onnx        triton/<model>/<v>/model.onnx                                      kserve/<model>/<v>/ (Triton)
    graphdef    triton/<model>/<v>/model.graphdef (+ io.json)                      kserve/<model>/<v>/ (Triton)
    openvino    triton/<model>/<v>/model.xml, model.bin                            kserve/<model>/<v>/ (Triton)
    tflite                                             tfserving/<model>/<v>/model.tflite   kserve/<v>/

Each Triton model directory gets a config.pbtxt; version directories are integers that only grow, so
Triton (version_policy latest 1) and TF Serving (the highest version) both serve the newest one.
Pure: paths and text only; the stage uploads what this plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optismith.errors import StageError
from optismith.graphio import IO_FILE, GraphIO, node_name, read_io
from optismith.results import ServingLayout, TensorInfo
from optismith.runs import layout

# Optismith runtime (catalog) -> the format servers know it by.
FORMATS = {"tf-savedmodel": "savedmodel", "tf-xla": "savedmodel", "tf-graphdef": "graphdef", "tflite": "tflite",
           "onnxruntime": "onnx", "openvino": "openvino"}
# Triton's platform or backend, and the name of the model file or directory in a version directory.
_TRITON = {"savedmodel": ('platform: "tensorflow_savedmodel"', "model.savedmodel"),
           "onnx": ('platform: "onnxruntime_onnx"', "model.onnx"),
           "graphdef": ('platform: "tensorflow_graphdef"', "model.graphdef"),
           "openvino": ('backend: "openvino"', "")}  # "": the IR's files (model.xml, model.bin) themselves
_TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
                  "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                  "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64",
                  "bool": "TYPE_BOOL", "string": "TYPE_STRING"}
# What KServe's storageUri of each format holds, and the modelFormat that picks the server.
_KSERVE = {"savedmodel": ("tensorflow", "TF Serving's layout: the predictor runs TF Serving on it"),
           "tflite": (None, "TF Serving's layout with model.tflite: needs a ServingRuntime that runs TF Serving with "
                            "--prefer_tflite_model (KServe has no built-in TFLite runtime)"),
           "onnx": ("onnx", "a Triton model repository: the predictor runs Triton on it (protocolVersion v2)"),
           "graphdef": ("triton", "a Triton model repository (tensorflow_graphdef)"),
           "openvino": ("triton", "a Triton model repository (openvino backend)")}


@dataclass(frozen=True)
class Placement:
    """One upload: a local file or directory to a key under the promotion URI."""

    key: str
    source: Path


@dataclass
class ServingPlan:
    format: str
    version: int
    artifact: str  # the key the runtime loads (relative to the promotion URI)
    uploads: list[Placement] = field(default_factory=list)
    configs: dict[str, bytes] = field(default_factory=dict)  # config.pbtxt files, written after the uploads
    servers: dict[str, ServingLayout] = field(default_factory=dict)
    version_dirs: list[str] = field(default_factory=list)  # every directory this version occupies


def format_of(runtime: str) -> str:
    try:
        return FORMATS[runtime]
    except KeyError:
        raise StageError(f"no serving layout for runtime {runtime!r}", where="promote",
                         fix=f"promote one of the runtimes {', '.join(FORMATS)}") from None


def _dims(shape: Sequence[int | None]) -> str:
    return ", ".join("-1" if d is None else str(d) for d in shape)


def _tensors(kind: str, tensors: Sequence[tuple[str, str, Sequence[int | None]]]) -> list[str]:
    lines = []
    for name, dtype, shape in tensors:
        data_type = _TRITON_DTYPES.get(dtype)
        if data_type is None:
            return []  # a type Triton cannot name: let its auto-complete read the model instead
        lines.append(f'  {{ name: "{name}" data_type: {data_type} dims: [ {_dims(shape)} ] }}')
    return [f"{kind} [", ",\n".join(lines), "]"] if lines else []


def triton_config(model: str, fmt: str, *, graph_io: GraphIO | None = None,
                  signature: tuple[Sequence[TensorInfo], Sequence[TensorInfo]] | None = None) -> str:
    """config.pbtxt. max_batch_size 0: the dims are the model's own, batch dimension included (-1), so no
    batching assumption is made for the model; inputs and outputs are given where they are known
    (required for GraphDefs; SavedModel, ONNX and OpenVINO are auto-completed by Triton otherwise)."""
    lines = [f'name: "{model}"', _TRITON[fmt][0], "max_batch_size: 0",
             "version_policy: { latest: { num_versions: 1 } }"]
    if graph_io is not None:
        lines += _tensors("input", [(node_name(t.tensor), t.dtype, t.shape) for t in graph_io.inputs])
        lines += _tensors("output", [(node_name(t.tensor), t.dtype, t.shape) for t in graph_io.outputs])
    elif signature is not None:
        inputs, outputs = signature
        lines += _tensors("input", [(t.name, t.dtype, t.shape) for t in inputs])
        lines += _tensors("output", [(t.name, t.dtype, t.shape) for t in outputs])
    return "\n".join(lines) + "\n"


def _triton_files(fmt: str, version_dir: str, local: Path) -> list[Placement]:
    name = _TRITON[fmt][1]
    if fmt == "graphdef":
        return [Placement(f"{version_dir}/{name}", local),
                Placement(f"{version_dir}/{IO_FILE}", local.parent / IO_FILE)]
    if not name:
        return [Placement(version_dir, local)]
    return [Placement(f"{version_dir}/{name}", local)]


def plan(fmt: str, model: str, version: int, local: Path, *,
         signature: tuple[Sequence[TensorInfo], Sequence[TensorInfo]] | None = None) -> ServingPlan:
    """Every upload and config of one promoted version. `local` is the fetched artifact (a GraphDef's
    io.json lies next to it)."""
    graph_io = None
    if fmt == "graphdef":
        graph_io = read_io(local.parent)
    kserve_format, kserve_note = _KSERVE[fmt]
    if fmt in _TRITON:
        # KServe runs TF Serving for SavedModels (below), Triton for the rest: kserve/ holds one of the two.
        repositories = [layout.TRITON] if fmt == "savedmodel" else [layout.TRITON, layout.KSERVE]
        config = triton_config(model, fmt, graph_io=graph_io, signature=signature).encode()
        triton_dir = layout.triton_version(model, version)
        result = ServingPlan(fmt, version, artifact=_triton_files(fmt, triton_dir, local)[0].key)
        for root in repositories:
            version_dir = layout.triton_version(model, version, root)
            result.uploads += _triton_files(fmt, version_dir, local)
            result.configs[f"{layout.triton_model(model, root)}/config.pbtxt"] = config
            result.version_dirs.append(version_dir)
        result.servers[layout.TRITON] = ServingLayout(
            path=layout.TRITON, note=f"tritonserver --model-repository=<uri>/{layout.TRITON}: model {model!r}")
    if fmt in ("savedmodel", "tflite"):
        tf_dir = layout.tfserving_version(model, version)
        kserve_dir = layout.kserve_version(version)
        suffix = "" if fmt == "savedmodel" else "/model.tflite"
        if fmt == "tflite":
            result = ServingPlan(fmt, version, artifact=f"{tf_dir}{suffix}")  # Triton has no TFLite backend
        result.uploads += [Placement(f"{tf_dir}{suffix}", local), Placement(f"{kserve_dir}{suffix}", local)]
        result.version_dirs += [tf_dir, kserve_dir]
        flag = " --prefer_tflite_model" if fmt == "tflite" else ""
        result.servers[layout.TFSERVING] = ServingLayout(
            path=f"{layout.TFSERVING}/{model}",
            note=f"tensorflow_model_server --model_name={model} --model_base_path=<uri>/{layout.TFSERVING}/{model}"
                 f"{flag}")
    result.servers[layout.KSERVE] = ServingLayout(path=layout.KSERVE, model_format=kserve_format, note=kserve_note)
    return result


def version_directories(model: str, version: int) -> list[str]:
    """Every directory a version may occupy in any layout (what retention deletes)."""
    return [layout.triton_version(model, version), layout.triton_version(model, version, layout.KSERVE),
            layout.tfserving_version(model, version), layout.kserve_version(version)]
