"""The report's plots follow the data: no colour bar when every accuracy drop is the same, labels of
points that crowd together do not overlap, and the throughput-latency curves have a line per variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optismith.results import Candidate, ConfigResult, LatencyStats, VariantBenchmark
from optismith.stages.report import plots


def candidate(variant: str, p50: float, size: int, drop: float | None) -> Candidate:
    return Candidate(variant=variant, target="cpu", objective_value=p50, latency_p50_ms=p50, latency_p99_ms=p50 * 2,
                     throughput_per_s=1000 / p50, size_bytes=size, accuracy_drop=drop, speedup=1.0, passed=True)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions save, kept open for inspection."""
    figures: list[Any] = []
    plt = plots._pyplot()
    monkeypatch.setattr(plt, "close", lambda figure=None: figures.append(figure))
    return figures


def test_equal_drops_get_no_colour_bar_and_say_so(tmp_path: Path, captured: list[Any]) -> None:
    crowded = [candidate(f"tflite-variant-{i}", 1.0 + i * 0.001, 100_000 + i * 10, 0.0) for i in range(5)]
    plots.tradeoff(crowded, tmp_path / "t.png", "t")
    figure = captured[-1]
    assert len(figure.axes) == 1  # a colour bar would be a second axes
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "accuracy drop 0.00% for every variant" in legend


def test_differing_drops_get_a_colour_bar_spanning_them(tmp_path: Path, captured: list[Any]) -> None:
    plots.tradeoff([candidate("a", 1.0, 1000, 0.001), candidate("b", 2.0, 5000, 0.02)], tmp_path / "t.png", "t")
    figure = captured[-1]
    assert len(figure.axes) == 2
    low, high = figure.axes[1].get_ylim()
    assert (round(low, 3), round(high, 3)) == (0.1, 2.0)


def test_crowded_labels_do_not_overlap(tmp_path: Path, captured: list[Any]) -> None:
    crowded = [candidate(f"tflite-variant-{i}", 1.0 + i * 0.001, 100_000 + i * 10, 0.0) for i in range(5)]
    plots.tradeoff(crowded, tmp_path / "t.png", "t")
    figure = captured[-1]
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in figure.axes[0].texts]
    assert len(boxes) == 5
    assert not [(i, j) for i in range(5) for j in range(i + 1, 5) if boxes[i].overlaps(boxes[j])]


def config(batch: int, p99: float, throughput: float) -> ConfigResult:
    stats = LatencyStats(p50_ms=p99 / 2, p90_ms=p99 * 0.8, p99_ms=p99, mean_ms=p99 / 2, ci95_low_ms=p99 / 2,
                         ci95_high_ms=p99 / 2, samples=10)
    return ConfigResult(batch_size=batch, threads=1, latency=stats, baseline_latency=stats, speedup=1.0,
                        throughput_per_s=throughput, stable=True, rounds=10)


def test_throughput_latency_has_one_curve_per_measured_variant(tmp_path: Path, captured: list[Any]) -> None:
    curves = {name: {str(b): config(b, b * scale, 1000 * b / (b * scale)) for b in (1, 8, 32)}
              for name, scale in (("onnx-fp32", 0.5), ("tflite-int8", 0.3))}
    benches = [VariantBenchmark(variant=name, target="cpu", status="built", best_by_batch=best)
               for name, best in curves.items()]
    benches.append(VariantBenchmark(variant="openvino-fp32", target="cpu", status="skipped"))
    plots.throughput_latency(benches, tmp_path / "c.png", "c")
    axes = captured[-1].axes[0]
    assert [line.get_label() for line in axes.get_lines()] == ["onnx-fp32", "tflite-int8"]
    assert all(len(line.get_xdata()) == 3 for line in axes.get_lines())
    assert sorted({t.get_text() for t in axes.texts}) == ["b1", "b32", "b8"]
