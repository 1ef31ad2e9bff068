"""The GPU worker's measure phase runs in a process where TensorFlow cannot even be imported: the baseline
(the real tf-savedmodel runtime) is skipped with the reason, the reference and the variants (fakes of ONNX
Runtime's CUDA provider) are measured and evaluated, and TensorFlow never gets loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import sys
    for blocked in ("tensorflow", "keras", "tf2onnx", "ai_edge_litert", "openvino"):
        sys.modules[blocked] = None  # `import tensorflow` raises ImportError, as on the GPU image
    from pathlib import Path
    import pytest
    import optismith.runs.eligibility as eligibility
    from optismith.stages.benchmark import BenchmarkStage
    from optismith.stages.evaluate import EvaluateStage
    from tests.stages import fake_runtimes as fakes

    eligibility.gpu_visible = lambda: True
    monkeypatch = pytest.MonkeyPatch()
    fakes.install_fakes(monkeypatch)
    tmp = Path(sys.argv[1])
    baseline = fakes.fake_variant("tf-savedmodel", runtime="tf-savedmodel")
    reference = fakes.fake_variant("onnx-fp32", runtime=fakes.FAKE_GPU, units=2)
    reference[1]["device_resident"] = False
    variants = [baseline, reference, fakes.fake_variant("onnx-cuda-fp16", runtime=fakes.FAKE_GPU)]
    model = fakes.manifest(tmp, targets=[{"name": "h200", "kind": "gpu"}], benchmark={"batchSizes": [1]})
    ctx = fakes.make_run(tmp, variants, model=model, target="h200")
    ctx.write_arrays("samples/outputs.npz", {"probabilities": fakes.FakeSession({"units": {"1": 1}}, 1).run(
        [ctx.read_arrays("samples/inputs.npz")["image"]])[0]})
    bench = {b.variant: b for b in BenchmarkStage().run(ctx).benchmarks}
    evaluation = {a.variant: a for a in EvaluateStage().run(ctx).accuracy}
    assert bench["tf-savedmodel"].status == "skipped", bench["tf-savedmodel"]
    assert "tensorflow is not installed" in bench["tf-savedmodel"].reason
    assert bench["onnx-fp32"].status == "built" and bench["onnx-cuda-fp16"].status == "built"
    assert evaluation["onnx-cuda-fp16"].value == 1.0
    assert "tensorflow" not in {name for name, module in sys.modules.items() if module is not None}
    print("OK")
''')


def test_benchmark_and_evaluate_run_without_tensorflow(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False,
                          env={"PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout[-2000:] + done.stderr[-3000:]
