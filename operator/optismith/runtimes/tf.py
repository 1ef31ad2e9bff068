"""TensorFlow runtimes: the SavedModel as TF Serving runs it, a frozen/optimized GraphDef, and XLA.

Graph-mode Sessions get their own intra-op thread pool only when TF_OVERRIDE_GLOBAL_THREADPOOL is set
before TensorFlow creates its first device; otherwise the first Session's (or eager context's) thread
count silently applies to every later Session: `optismith.frameworks.import_tensorflow` sets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from optismith.frameworks import import_tensorflow
from optismith.graphio import TensorIO, read_io
from optismith.runtimes.base import Device, IOSpec, Runtime, Session


def _tf() -> Any:
    return import_tensorflow()


def _shape(tensor_shape: Any) -> tuple[int | None, ...]:
    if tensor_shape.unknown_rank:
        return ()
    return tuple(None if dim.size < 0 else int(dim.size) for dim in tensor_shape.dim)


def _session_config(threads: int) -> Any:
    tf = _tf()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1, allow_soft_placement=True
    )
    # On a GPU, TensorFlow would otherwise take all of its memory, and ONNX Runtime sessions measured in the
    # same process could not allocate theirs.
    config.gpu_options.allow_growth = True
    return config


class GraphSession(Session):
    """A v1 Session fed and fetched by tensor names; `inputs`/`outputs` carry the signature keys."""

    def __init__(self, session: Any, inputs: list[tuple[IOSpec, str]], outputs: list[tuple[IOSpec, str]]) -> None:
        self._session = session
        self.inputs = [spec for spec, _ in inputs]
        self.outputs = [spec for spec, _ in outputs]
        self._feeds = [tensor for _, tensor in inputs]
        self._fetches = [tensor for _, tensor in outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._feeds):
            raise ValueError(f"expected {len(self._feeds)} inputs ({[s.name for s in self.inputs]}), got {len(feeds)}")
        feed_dict = {
            tensor: np.asarray(array, dtype=spec.dtype)
            for tensor, spec, array in zip(self._feeds, self.inputs, feeds, strict=True)
        }
        return [np.asarray(value) for value in self._session.run(self._fetches, feed_dict)]

    def close(self) -> None:
        self._session.close()


def _available() -> str | None:
    try:
        _tf()
    except ImportError as error:
        return f"tensorflow is not installed ({error}): pip install 'optismith[tf]'"
    return None


def _versions() -> dict[str, str]:
    try:
        return {"tensorflow": str(_tf().__version__)}
    except ImportError:
        return {}


def serving_tags(artifact: Path) -> list[str]:
    """The tags of the MetaGraph TF Serving would load: the one tagged 'serve', else the only one."""
    _tf()
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((artifact / "saved_model.pb").read_bytes())
    tag_sets = [list(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    return next((tags for tags in tag_sets if "serve" in tags), tag_sets[0] if tag_sets else ["serve"])


class TensorFlowRuntime(Runtime):
    """What the three TensorFlow runtimes share: availability and versions come from TensorFlow itself. On a
    GPU target they run only where TensorFlow sees the GPU (a CPU build would silently measure the CPU)."""

    devices: ClassVar[tuple[Device, ...]] = ("cpu", "gpu")

    @classmethod
    def availability(cls) -> str | None:
        return _available()

    @classmethod
    def availability_on(cls, device: Device, options: dict[str, Any] | None = None) -> str | None:
        missing = _available()
        if missing is not None or device == "cpu":
            return missing
        if not _tf().config.list_physical_devices("GPU"):
            return f"TensorFlow {_tf().__version__} here sees no GPU (a CPU build): it would run on the CPU"
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        return _versions()


class SavedModelRuntime(TensorFlowRuntime):
    """The baseline, served as TF Serving serves it: the SavedModel's MetaGraph loaded into a graph-mode
    Session (`tf.compat.v1.saved_model.loader.load`), fed and fetched by the signature's tensor names.
    Options: `signature` (default serving_default), `tags` (default: the MetaGraph tagged "serve")."""

    name: ClassVar[str] = "tf-savedmodel"

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        tf = _tf()
        options = options or {}
        signature = str(options.get("signature", "serving_default"))
        tags = list(options["tags"]) if "tags" in options else serving_tags(artifact)
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=_session_config(threads))
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, tags, str(artifact))
        if signature not in meta_graph.signature_def:
            session.close()
            raise KeyError(f"no signature {signature!r} in {artifact}; it has {sorted(meta_graph.signature_def)}")
        definition = meta_graph.signature_def[signature]

        def specs(tensors: Any) -> list[tuple[IOSpec, str]]:
            return [
                (IOSpec(key, tf.dtypes.as_dtype(value.dtype).name, _shape(value.tensor_shape)), value.name)
                for key, value in sorted(tensors.items())
            ]

        return GraphSession(session, specs(definition.inputs), specs(definition.outputs))


def graph_path(artifact: Path) -> Path:
    """The .pb of a GraphDef artifact given as the file or as its directory."""
    if artifact.is_file():
        return artifact
    candidates = sorted(artifact.glob("*.pb"))
    if len(candidates) != 1:
        raise FileNotFoundError(f"expected one .pb in {artifact}, found {[p.name for p in candidates]}")
    return candidates[0]


def read_graph_io(directory: Path) -> tuple[list[tuple[IOSpec, str]], list[tuple[IOSpec, str]]]:
    """The io.json sidecar as ([(spec, tensor name)] for inputs, same for outputs), sorted by name."""
    io = read_io(directory)

    def entries(tensors: tuple[TensorIO, ...]) -> list[tuple[IOSpec, str]]:
        return [(IOSpec(t.name, t.dtype, t.shape), t.tensor) for t in tensors]

    return entries(io.inputs), entries(io.outputs)


class GraphDefRuntime(TensorFlowRuntime):
    """A frozen or optimized GraphDef (`.pb`) with its `io.json` sidecar, in a graph-mode Session
    configured like the baseline's."""

    name: ClassVar[str] = "tf-graphdef"

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        tf = _tf()
        path = graph_path(artifact)
        inputs, outputs = read_graph_io(path.parent)
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        session = tf.compat.v1.Session(graph=graph, config=_session_config(threads))
        return GraphSession(session, inputs, outputs)


class XlaSession(Session):
    def __init__(self, owner: Any, function: Any, inputs: list[IOSpec], outputs: list[IOSpec]) -> None:
        self._owner = owner  # the loaded SavedModel owns the variables the function reads
        self._function = function
        self.inputs = inputs
        self.outputs = outputs

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        tf = _tf()
        kwargs = {spec.name: tf.constant(np.asarray(array, dtype=spec.dtype))
                  for spec, array in zip(self.inputs, feeds, strict=True)}
        results = self._function(**kwargs)
        return [np.asarray(results[spec.name]) for spec in self.outputs]


class XlaRuntime(TensorFlowRuntime):
    """The SavedModel's serving function wrapped in `tf.function(jit_compile=True)`.

    Limitation: this runs eagerly, where the intra-op thread count is process-wide and fixed when
    TensorFlow initializes, so `threads` cannot be applied per session and is ignored; results for
    different thread counts measure the same configuration. Each new input shape compiles anew.
    Options: `signature` (default serving_default)."""

    name: ClassVar[str] = "tf-xla"

    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: dict[str, Any] | None = None) -> Session:
        tf = _tf()
        signature = str((options or {}).get("signature", "serving_default"))
        loaded = tf.saved_model.load(str(artifact))
        if signature not in loaded.signatures:
            raise KeyError(f"no signature {signature!r} in {artifact}; it has {sorted(loaded.signatures)}")
        function = loaded.signatures[signature]
        _, input_specs = function.structured_input_signature
        inputs = [IOSpec(key, spec.dtype.name, tuple(spec.shape.as_list()) if spec.shape.rank is not None else ())
                  for key, spec in sorted(input_specs.items())]
        outputs = [IOSpec(key, spec.dtype.name, tuple(spec.shape.as_list()) if spec.shape.rank is not None else ())
                   for key, spec in sorted(function.structured_outputs.items())]
        compiled = tf.function(function, jit_compile=True)
        return XlaSession(loaded, compiled, inputs, outputs)
