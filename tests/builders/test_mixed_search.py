"""The mixed-int8 search (builders/mixed.py) on a toolchain whose layers' effect on the outputs is known:
each "int8" layer adds a fixed error to the class scores, and keeping it in float removes that error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from optismith.builders.base import Unavailable
from optismith.builders.mixed import FULL_INT8_PASSES, Budget, GateData, MixedSearchFailed, Sensitivity, search
from optismith.runtimes import IOSpec
from optismith.runtimes.base import Session

SAMPLES = 100
REFERENCE = np.tile(np.eye(4, dtype=np.float32), (SAMPLES // 4, 1)) * 2.0  # class i wins sample i % 4


class FakeSession(Session):
    def __init__(self, outputs: np.ndarray) -> None:
        self._outputs = outputs
        self.inputs = [IOSpec("x", "float32", (None, 1))]
        self.outputs = [IOSpec("scores", "float32", (None, 4))]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        rows = feeds[0][:, 0].astype(int)
        return [self._outputs[rows]]

    def close(self) -> None:
        pass


class FakeToolchain:
    """Layer `harm[name]` flips the top-1 class of that many samples while quantized."""

    metric = "error"

    def __init__(self, harm: dict[str, int], scores: dict[str, float]) -> None:
        self.harm, self.scores = harm, scores
        self.built: list[list[str]] = []

    def build(self, artifact: Path, keep_float: Sequence[str]) -> None:
        self.built.append(list(keep_float))

    def sensitivity(self, artifact: Path) -> list[Sensitivity]:
        return [Sensitivity(name, score, "CONV_2D") for name, score in self.scores.items()]

    def load(self, artifact: Path) -> Session:
        flipped = sum(n for name, n in self.harm.items() if name not in self.built[-1])
        outputs = REFERENCE.copy()
        outputs[:flipped] = np.roll(outputs[:flipped], 1, axis=1)
        return FakeSession(outputs)


def data(max_drop: float = 0.01) -> GateData:
    return GateData({"x": np.arange(SAMPLES, dtype=np.float32)[:, None]}, [REFERENCE], ["scores"], max_drop, "fake")


def budget(attempts: int = 6, fraction: float = 1.0, seconds: float = 60.0) -> Budget:
    return Budget(attempts, fraction, seconds, clock=lambda: 0.0)


LAYERS = {f"layer{i}": float(10 - i) for i in range(10)}  # layer0 scores worst


def test_full_int8_that_passes_is_skipped_not_duplicated(tmp_path: Path) -> None:
    toolchain = FakeToolchain({}, LAYERS)
    with pytest.raises(Unavailable, match=FULL_INT8_PASSES):
        search(toolchain, tmp_path / "m", data(), budget())
    assert toolchain.built == [[]]  # only the full-int8 build


def test_doubling_keeps_the_most_sensitive_layers_until_the_gate_passes(tmp_path: Path) -> None:
    # layers 0-2 flip 5 samples each: the gate (1% of 100) passes once all three are float (the 4-layer attempt)
    toolchain = FakeToolchain({"layer0": 5, "layer1": 5, "layer2": 5}, LAYERS)
    found = search(toolchain, tmp_path / "m", data(), budget())
    assert toolchain.built == [[], ["layer0"], ["layer0", "layer1"], ["layer0", "layer1", "layer2", "layer3"]]
    assert [layer["layer"] for layer in found["float_layers"]] == ["layer0", "layer1", "layer2", "layer3"]
    assert found["float_layers"][0]["error"] == 10.0
    assert [a["float_layers"] for a in found["attempts"]] == [0, 1, 2, 4]
    assert found["full_int8_gate"]["drop"] == pytest.approx(0.15)
    assert found["gate"]["passes"] and found["quantized_layers"] == 6


def test_an_attempt_budget_that_ends_fails_with_the_attempts(tmp_path: Path) -> None:
    toolchain = FakeToolchain({"layer9": 50}, LAYERS)  # the harm is in the layer ranked least sensitive
    with pytest.raises(MixedSearchFailed, match=r"maxAttempts: 0 float: drop 50.00%; 1 float: drop 50.00%"):
        search(toolchain, tmp_path / "m", data(), budget(attempts=3))
    assert len(toolchain.built) == 4


def test_the_float_fraction_caps_the_last_attempt(tmp_path: Path) -> None:
    toolchain = FakeToolchain({"layer9": 50}, LAYERS)
    with pytest.raises(MixedSearchFailed, match=r"maxFloatFraction \(3 of 10"):
        search(toolchain, tmp_path / "m", data(), budget(fraction=0.3))
    assert [len(kept) for kept in toolchain.built] == [0, 1, 2, 3]  # 1, 2, then the cap itself


def test_a_time_budget_that_ends_stops_the_search(tmp_path: Path) -> None:
    ticks = iter(range(0, 1000, 10))
    toolchain = FakeToolchain({"layer9": 50}, LAYERS)
    with pytest.raises(MixedSearchFailed, match="timeBudget"):
        search(toolchain, tmp_path / "m", data(), Budget(32, 1.0, 25.0, clock=lambda: next(ticks)))
    assert len(toolchain.built) < 4
