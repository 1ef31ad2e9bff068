"""How long the op policy's scan takes on a real model, and how TensorFlow's registry splits into its classes:
the figures in docs/security.md.

    .venv/bin/python -m bench.scan_time            # MobileNetV2 (weights=None, model.export), 5 timed scans
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    import keras

    from optismith.models.policy import scan_saved_model
    from optismith.models.policy.classify import counts, registry

    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "mobilenet_v2"
        keras.applications.MobileNetV2(weights=None).export(str(model), verbose=False)
        first = time.perf_counter()
        report = scan_saved_model(model)
        first_seconds = time.perf_counter() - first
        timed = []
        for _ in range(5):
            started = time.perf_counter()
            scan_saved_model(model)
            timed.append(time.perf_counter() - started)
    print(json.dumps({"model": "MobileNetV2", "ops": report.ops_checked, "functions": report.functions_checked,
                      "findings": len(report.findings), "first_scan_s": round(first_seconds, 3),
                      "median_scan_s": round(statistics.median(timed), 3), "classes": counts(registry())},
                     indent=1))


if __name__ == "__main__":
    main()
