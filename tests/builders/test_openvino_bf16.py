"""openvino-bf16: the f32 IR of openvino-fp32, run with INFERENCE_PRECISION_HINT=bf16 (and openvino-fp32
really in f32, though OpenVINO's default on a bf16 CPU is bf16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optismith import catalog
from optismith.measure.cpu_features import host_flags, shortfall
from optismith.runtimes.openvino import OpenVINORuntime
from tests.zoo.verdicts import build_variants

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_catalog_entries_say_the_precision_and_what_bf16_needs() -> None:
    bf16, fp32 = catalog.get("openvino-bf16"), catalog.get("openvino-fp32")
    assert bf16.runtime_options["precision"] == "bf16" and fp32.runtime_options["precision"] == "f32"
    assert bf16.cpu_features == (catalog.BF16_CPU,) and fp32.cpu_features == ()
    assert bf16.builder == fp32.builder and bf16.artifact == fp32.artifact == "ir"


def test_bf16_builds_and_computes_in_bf16(digits_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="openvino not installed (optional)")
    if shortfall([catalog.BF16_CPU], host_flags()):
        pytest.skip("this CPU runs no bf16 (tests/measure/test_cpu_features.py covers the skip)")
    verdicts = build_variants(digits_dir / "model", tmp_path, ["openvino-fp32", "openvino-bf16"])
    assert verdicts.built() >= {"openvino-fp32", "openvino-bf16"}, verdicts.explain()
    record = verdicts.records["openvino-bf16"]
    assert record.details["inference_precision_hint"] == "bf16" and record.details["weights"] == "f32"
    assert record.numerics is not None and record.numerics.top1_agreement == 1.0
    fp32_numerics = verdicts.records["openvino-fp32"].numerics
    assert fp32_numerics is not None and record.numerics.max_abs_error > 100 * fp32_numerics.max_abs_error

    x = np.load(digits_dir / "data" / "eval.npz")["x"][:16].astype(np.float32)
    outputs = {}
    for name in ("openvino-fp32", "openvino-bf16"):
        artifact = tmp_path / "run" / catalog.get(name).key
        session = OpenVINORuntime.load(artifact, threads=1, options=dict(catalog.get(name).runtime_options))
        assert session.precision == catalog.get(name).runtime_options["precision"]  # type: ignore[attr-defined]
        (outputs[name],) = session.run([x])
    assert not np.array_equal(outputs["openvino-bf16"], outputs["openvino-fp32"])  # it really computed in bf16
    np.testing.assert_allclose(outputs["openvino-bf16"], outputs["openvino-fp32"], atol=0.05)
