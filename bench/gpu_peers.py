"""The GPU bench's peers, measured by hand in one process with Optismith's winner, in interleaved rounds:

* ONNX Runtime CUDA with its defaults, as a user calls it: `InferenceSession(path,
  providers=["CUDAExecutionProvider"])` and `session.run` with numpy in and out (the same artifact as the
  benchmark stage's reference, but not through Optismith's code);
* PyTorch's torchvision model of the same name (weights=None): fp16, channels-last, a captured CUDA graph,
  data already on the GPU. A different implementation of the architecture (PyTorch's layers and kernels,
  not our SavedModel): an upper-bound reference for what the GPU can do, not a like-for-like peer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from optismith.measure.interleave import RoundsPlan, interleaved_rounds

Call = Callable[[], object]
TORCHVISION = {"mobilenetv2": "mobilenet_v2", "resnet50": "resnet50"}


def ort_defaults(artifact: Path, batch: np.ndarray, provider: str = "CUDAExecutionProvider") -> tuple[Call, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifact), providers=[provider])
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: batch})), session


def torch_fp16_graph(model: str, batch: int) -> tuple[Call, Any]:
    """torchvision `model`, fp16, channels-last, one CUDA graph for this batch size; None without CUDA."""
    import torch
    import torchvision

    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    net = getattr(torchvision.models, TORCHVISION[model])(weights=None).eval().cuda().half()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode():
        with torch.cuda.stream(stream):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            net(x)
    torch.cuda.synchronize()

    def call() -> None:
        graph.replay()
        torch.cuda.synchronize()

    return call, (net, x, graph)


def interleave(calls: dict[str, tuple[Call, int]], budget_s: float) -> dict[str, dict[str, Any]]:
    """Every candidate once per round, in a random order each round, for `budget_s`; per candidate p50/p90/
    mean latency and throughput (batch / mean)."""
    plan = RoundsPlan(budget_s=budget_s, min_rounds=10, warmup_calls=5, stability=0.02)
    timings = interleaved_rounds({name: call for name, (call, _) in calls.items()}, plan)
    summary: dict[str, dict[str, Any]] = {}
    for name, (_, batch) in calls.items():
        stats = dict(timings[name].summary(plan.stability))
        stats["batch"] = batch
        stats["throughput_per_s"] = batch / (float(stats["mean_ms"]) / 1e3)
        summary[name] = stats
    return summary
