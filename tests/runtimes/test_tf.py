"""The TensorFlow runtimes: SavedModel as TF Serving serves it, frozen GraphDef, and XLA."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optismith.runtimes.tf import GraphDefRuntime, SavedModelRuntime, XlaRuntime, graph_path

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def digits(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The SavedModel, its frozen graph, some inputs and the Keras model's outputs on them."""
    import keras

    from optismith.models.freezing import freeze_saved_model, write_graph

    frozen = freeze_saved_model(digits_dir / "model", "serving_default")
    frozen_path = write_graph(frozen.graph_def, frozen.io, tmp_path_factory.mktemp("frozen"), "frozen.pb")
    x = np.load(digits_dir / "data" / "eval.npz")["x"][:16]
    model = keras.saving.load_model(digits_dir / "model.keras", compile=False)
    return {"saved_model": digits_dir / "model", "frozen": frozen_path, "x": x, "expected": np.asarray(model(x))}


@pytest.mark.parametrize(
    ("runtime", "artifact"),
    [(SavedModelRuntime, "saved_model"), (GraphDefRuntime, "frozen"), (XlaRuntime, "saved_model")],
)
def test_runtime_reproduces_the_keras_model(runtime: type, artifact: str, digits: dict[str, object]) -> None:
    session = runtime.load(digits[artifact], threads=1)
    try:
        assert [(s.name, s.dtype, s.shape) for s in session.inputs] == [("image", "float32", (None, 8, 8, 1))]
        assert [(s.name, s.dtype, s.shape) for s in session.outputs] == [("output_0", "float32", (None, 10))]
        (probabilities,) = session.run([digits["x"]])
        np.testing.assert_allclose(probabilities, digits["expected"], atol=1e-5)
        (one,) = session.run([np.asarray(digits["x"])[:1].astype(np.float64)])  # cast to the input's dtype
        np.testing.assert_allclose(one, np.asarray(digits["expected"])[:1], atol=1e-5)
    finally:
        session.close()


def test_graph_sessions_carry_their_thread_count(digits: dict[str, object]) -> None:
    for runtime, artifact in ((SavedModelRuntime, "saved_model"), (GraphDefRuntime, "frozen")):
        session = runtime.load(digits[artifact], threads=3)
        config = session._session._config  # type: ignore[attr-defined]
        assert config.intra_op_parallelism_threads == 3 and config.inter_op_parallelism_threads == 1
        session.close()
    assert os.environ.get("TF_OVERRIDE_GLOBAL_THREADPOOL") == "1"


@pytest.mark.slow
def test_each_session_gets_its_own_thread_pool_even_after_eager_tensorflow_started(tmp_path: Path) -> None:
    """Without TF_OVERRIDE_GLOBAL_THREADPOOL the first device's pool (here: eager's) is shared by every
    Session and `threads` is ignored; with it, a Session starts its own intra-op threads. Counted in a
    fresh process, where nothing has initialized TensorFlow yet."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        import numpy as np
        from optismith.runtimes.tf import GraphDefRuntime, _tf
        tf = _tf()
        tf.constant(1.0) + 1.0  # the eager context creates its devices first
        graph = tf.Graph()
        with graph.as_default():
            a = tf.compat.v1.placeholder(tf.float32, [64, 64], name="a")
            tf.identity(tf.matmul(a, a), name="y")
        out = Path(sys.argv[1])
        tf.io.write_graph(graph.as_graph_def(), str(out), "g.pb", as_text=False)
        spec = '"dtype": "float32", "shape": [64, 64]'
        (out / "io.json").write_text('{"inputs": [{"name": "a", "tensor": "a:0", %s}], '
                                     '"outputs": [{"name": "y", "tensor": "y:0", %s}]}' % (spec, spec))
        threads = lambda: len(list(Path("/proc/self/task").iterdir()))
        before = threads()
        session = GraphDefRuntime.load(out / "g.pb", threads=5)
        session.run([np.ones((64, 64), np.float32)])
        print(threads() - before)
    """)
    if not Path("/proc/self/task").is_dir():
        pytest.skip("counts threads through /proc")
    env = {k: v for k, v in os.environ.items() if k != "TF_OVERRIDE_GLOBAL_THREADPOOL"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    started = int(result.stdout.strip().splitlines()[-1])
    assert started >= 5, f"a threads=5 session started only {started} threads: it shares a global pool"


def test_saved_model_runtime_signature_option(digits: dict[str, object]) -> None:
    session = SavedModelRuntime.load(digits["saved_model"], threads=1, options={"signature": "serve"})
    assert [s.name for s in session.inputs] == ["image"]
    session.close()
    with pytest.raises(KeyError, match="serving_default"):
        SavedModelRuntime.load(digits["saved_model"], threads=1, options={"signature": "nope"})
    with pytest.raises(KeyError, match="serving_default"):
        XlaRuntime.load(digits["saved_model"], threads=1, options={"signature": "nope"})


def test_graph_artifact_may_be_the_file_or_its_directory(digits: dict[str, object], tmp_path: Path) -> None:
    frozen = Path(str(digits["frozen"]))
    assert graph_path(frozen) == frozen and graph_path(frozen.parent) == frozen
    (tmp_path / "a.pb").write_bytes(b"")
    (tmp_path / "b.pb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"expected one \.pb"):
        graph_path(tmp_path)


def test_xla_ignores_threads_and_says_so(digits: dict[str, object]) -> None:
    assert "threads" in (XlaRuntime.__doc__ or "") and "ignored" in (XlaRuntime.__doc__ or "")
    results = []
    for threads in (1, 2):
        session = XlaRuntime.load(digits["saved_model"], threads=threads)
        results.append(session.run([digits["x"]])[0])
    np.testing.assert_array_equal(results[0], results[1])


def test_registered_available_and_versioned() -> None:
    import tensorflow as tf

    from optismith.runtimes import get_runtime

    for name, runtime in (
        ("tf-savedmodel", SavedModelRuntime),
        ("tf-graphdef", GraphDefRuntime),
        ("tf-xla", XlaRuntime),
    ):
        assert get_runtime(name) is runtime
        assert runtime.availability() is None
        assert runtime.versions() == {"tensorflow": tf.__version__}


def test_saved_model_without_the_serve_tag(tmp_path: Path) -> None:
    """A TF1 SavedModel saved under another tag is served from its only MetaGraph."""
    import tensorflow as tf

    from optismith.runtimes.tf import serving_tags

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        y = tf.identity(x * 3.0, name="y")
        builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "model"))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["inference"], {"serving_default": signature})
        builder.save()
    assert serving_tags(tmp_path / "model") == ["inference"]
    session = SavedModelRuntime.load(tmp_path / "model", threads=1)
    np.testing.assert_allclose(session.run([np.ones((2, 2), np.float32)])[0], np.full((2, 2), 3.0))
    session.close()
