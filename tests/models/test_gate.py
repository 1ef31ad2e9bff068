"""The numerics gate: rejects transformations that change results, tolerates float32 noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith.models.freezing import freeze_saved_model, write_graph
from optismith.models.gate import noise_floor, rejection_reason
from optismith.models.numerics import compare_outputs
from optismith.results import Numerics


def numerics_verdict(reference: list[np.ndarray], candidate: list[np.ndarray],
                     max_error: float) -> tuple[Numerics, str | None]:
    numerics = compare_outputs(reference, candidate)
    return numerics, rejection_reason(numerics, reference, max_error)


def _probabilities(seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(16, 10))
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def test_identical_outputs_pass() -> None:
    reference = [_probabilities()]
    numerics, reason = numerics_verdict(reference, [reference[0].copy()], 1e-3)
    assert reason is None and numerics.max_abs_error == 0.0 and numerics.top1_agreement == 1.0


def test_float32_rounding_noise_passes_even_a_zero_tolerance() -> None:
    reference = [_probabilities()]
    noisy = np.nextafter(reference[0], np.float32(2.0))  # one ULP up everywhere
    numerics, reason = numerics_verdict(reference, [noisy], 0.0)
    assert numerics.max_abs_error > 0 and reason is None
    assert noise_floor([np.full(3, 1000.0)]) > noise_floor(reference), "noise scales with the magnitude"


def test_a_real_change_is_rejected_with_the_numbers() -> None:
    reference = [_probabilities()]
    changed = reference[0] + np.float32(0.01)
    numerics, reason = numerics_verdict(reference, [changed], 1e-3)
    assert reason is not None
    assert f"{numerics.relative_error:.3g}" in reason and "maxAbsError 0.001" in reason
    assert numerics_verdict(reference, [changed], 0.5)[1] is None, "within a looser tolerance"


def test_non_finite_outputs_are_rejected() -> None:
    reference = [_probabilities()]
    broken = reference[0].copy()
    broken[3, 4] = np.nan
    assert "NaN" in (numerics_verdict(reference, [broken], 1.0)[1] or "")


@pytest.mark.tf
def test_a_perturbed_graph_is_rejected(digits_dir: Path, tmp_path: Path) -> None:
    """A deliberately wrong rewrite (one weight tensor scaled by 1.5), run through the tf-graphdef
    runtime like the stages do."""
    import tensorflow as tf

    from optismith.runtimes.tf import GraphDefRuntime

    frozen = freeze_saved_model(digits_dir / "model", "serving_default")
    good = write_graph(frozen.graph_def, frozen.io, tmp_path / "good", "frozen.pb")
    perturbed = tf.compat.v1.GraphDef()
    perturbed.CopyFrom(frozen.graph_def)
    kernels = [n for n in perturbed.node if n.op == "Const" and len(n.attr["value"].tensor.tensor_shape.dim) == 4]
    weights = tf.make_ndarray(kernels[-1].attr["value"].tensor)
    kernels[-1].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights * 1.5))
    bad = write_graph(perturbed, frozen.io, tmp_path / "bad", "frozen.pb")

    x = np.load(digits_dir / "data" / "eval.npz")["x"][:32]
    outputs = {}
    for name, path in (("good", good), ("bad", bad)):
        session = GraphDefRuntime.load(path, threads=1)
        outputs[name] = session.run([x])
        session.close()
    loaded = tf.saved_model.load(str(digits_dir / "model"))
    reference = [loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy()]

    assert numerics_verdict(reference, outputs["good"], 1e-3)[1] is None
    numerics, reason = numerics_verdict(reference, outputs["bad"], 1e-3)
    assert reason is not None and numerics.relative_error > 1e-3
