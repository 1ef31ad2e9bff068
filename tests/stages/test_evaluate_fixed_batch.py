"""evaluate's predict() on an artifact with a fixed batch size (TFLite of recurrent models): it feeds that
batch size, padding the last chunk, whatever evaluate's own batch size is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optismith.runtimes.base import IOSpec, Session
from optismith.stages.evaluate import EvaluationData, predict

FIXED = 3


class _FixedBatchSession(Session):
    inputs = [IOSpec("x", "float32", (FIXED, 2))]
    outputs = [IOSpec("y", "float32", (FIXED, 2))]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        assert feeds[0].shape[0] == FIXED, f"fed batch {feeds[0].shape[0]} to a batch-{FIXED} artifact"
        return [feeds[0] * 2]

    def close(self) -> None:
        pass


class _FixedBatchRuntime:
    @classmethod
    def load(cls, artifact: Path, *, threads: int, options: Any = None) -> _FixedBatchSession:
        return _FixedBatchSession()


def test_predict_feeds_the_artifacts_fixed_batch_and_drops_the_padding() -> None:
    x = np.arange(14, dtype=np.float32).reshape(7, 2)  # 7 samples: chunks of 3, 3 and 1 padded to 3
    outputs = predict(_FixedBatchRuntime, Path("unused"), EvaluationData({"x": x}, None, "test"),  # type: ignore[arg-type]
                      threads=1, batch=8)
    np.testing.assert_array_equal(outputs[0], x * 2)
