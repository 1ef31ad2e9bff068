"""PNG plots for the report (matplotlib with the Agg backend: no display, no GUI toolkit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optismith.results import Candidate, VariantBenchmark


def matplotlib_missing() -> str | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install 'optismith[tf]')"
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def latency_distribution(latencies_ms: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """Box plot of the raw per-round latencies of each variant, fastest median first."""
    plt = _pyplot()
    names = sorted(latencies_ms, key=lambda name: float(np.median(latencies_ms[name])))
    height = max(2.5, 0.45 * len(names) + 1.2)
    figure, axes = plt.subplots(figsize=(8, height))
    axes.boxplot([latencies_ms[name] for name in names], vert=False, showfliers=True, whis=(1, 99),
                 flierprops={"markersize": 2, "alpha": 0.4})
    axes.set_yticks(range(1, len(names) + 1), names)
    axes.invert_yaxis()  # fastest on top
    low = min(float(np.min(latencies_ms[name])) for name in names)
    high = max(float(np.max(latencies_ms[name])) for name in names)
    if low > 0 and high > 20 * low:
        axes.set_xscale("log")  # a few scheduler stalls would otherwise squash every box to a line
    axes.set_xlabel("latency per inference (ms); whiskers p1-p99")
    axes.set_title(title)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _spread_labels(figure: Any, axes: Any, labels: list[Any]) -> None:
    """Place each annotation at the first offset (right, then above/below in growing steps, then left) where
    it overlaps no label placed before and stays inside the axes: points with similar latency and size would
    otherwise print their names on top of each other."""
    renderer = figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    placed: list[Any] = []
    steps = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8]
    offsets = [(6, 2 + 9 * k) for k in steps] + [(-6, 2 + 9 * k) for k in steps]

    def clash(box: Any) -> float:
        """Overlapping area with the labels placed so far, plus what sticks out of the axes."""
        area = sum(max(0.0, min(box.x1, o.x1) - max(box.x0, o.x0)) * max(0.0, min(box.y1, o.y1) - max(box.y0, o.y0))
                   for o in placed)
        outside = (max(0.0, inside.x0 - box.x0) + max(0.0, box.x1 - inside.x1) + max(0.0, inside.y0 - box.y0)
                   + max(0.0, box.y1 - inside.y1)) * box.height
        return float(area + outside)

    for label in sorted(labels, key=lambda t: t.xy[1]):
        scored = []
        for dx, dy in offsets:
            label.set_position((dx, dy))
            label.set_horizontalalignment("left" if dx > 0 else "right")
            box = label.get_window_extent(renderer)
            scored.append((clash(box), (dx, dy)))
            if scored[-1][0] == 0:
                break
        (dx, dy) = min(scored)[1]  # a free spot, or the least crowded one
        label.set_position((dx, dy))
        label.set_horizontalalignment("left" if dx > 0 else "right")
        placed.append(label.get_window_extent(renderer))


def tradeoff(candidates: Sequence[Candidate], path: Path, title: str, *, with_target: bool = False) -> None:
    """Latency against size; colour is the accuracy drop when drops differ (one colour, said in the legend,
    when they are all equal); the Pareto front is ringed and joined; labels never overlap."""
    plt = _pyplot()
    points = [c for c in candidates if c.latency_p50_ms is not None and c.size_bytes is not None]
    figure, axes = plt.subplots(figsize=(8, 5))
    sizes = np.array([c.size_bytes or 0 for c in points], dtype=np.float64) / 1024
    if points:
        latency = np.array([c.latency_p50_ms or 0.0 for c in points])
        drops = np.array([np.nan if c.accuracy_drop is None else c.accuracy_drop * 100 for c in points])
        known = drops[~np.isnan(drops)]
        if known.size and float(np.ptp(known)) > 1e-9:
            scatter = axes.scatter(sizes, latency, c=np.nan_to_num(drops, nan=float(np.nanmax(known))),
                                   cmap="viridis_r", vmin=float(known.min()), vmax=float(known.max()), s=60,
                                   edgecolors="none", zorder=3)
            figure.colorbar(scatter, ax=axes, label="accuracy drop (%)")
        else:
            same = f"{known[0]:.2f}%" if known.size else "not measured"
            axes.scatter(sizes, latency, color="tab:blue", s=60, edgecolors="none", zorder=3,
                         label=f"accuracy drop {same} for every variant")
        front = sorted((c for c in points if c.pareto), key=lambda c: c.size_bytes or 0)
        if front:
            axes.plot([(c.size_bytes or 0) / 1024 for c in front], [c.latency_p50_ms for c in front],
                      color="crimson", linewidth=1, zorder=2, label="Pareto front")
            axes.scatter([(c.size_bytes or 0) / 1024 for c in front], [c.latency_p50_ms for c in front],
                         s=160, facecolors="none", edgecolors="crimson", zorder=4)
        labels = []
        for candidate, x, y in zip(points, sizes, latency, strict=True):
            label = f"{candidate.variant}@{candidate.target}" if with_target else candidate.variant
            label += "" if candidate.passed else " (failed gates)"
            labels.append(axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7,
                                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5}))
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no variant has both a latency and a size", ha="center", transform=axes.transAxes)
    if points and max(sizes) > 20 * max(min(sizes), 1e-3):
        axes.set_xscale("log")  # artifacts span orders of magnitude (int8 vs float SavedModel)
    axes.margins(x=0.2, y=0.15)
    axes.set_xlabel("artifact size (KiB)")
    axes.set_ylabel("p50 latency (ms)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    if points:
        _spread_labels(figure, axes, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def throughput_latency(benchmarks: Sequence[VariantBenchmark], path: Path, title: str) -> None:
    """One curve per variant across batch sizes, like Triton Model Analyzer's: p99 latency of a request
    (x) against samples per second (y); each point is labelled with its batch size."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    drawn = 0
    latencies: list[float] = []
    for bench in benchmarks:
        configs = [bench.best_by_batch[k] for k in sorted(bench.best_by_batch, key=int)]
        if bench.status != "built" or not configs:
            continue
        x = [c.latency.p99_ms for c in configs]
        y = [c.throughput_per_s for c in configs]
        latencies += x
        (line,) = axes.plot(x, y, marker="o", markersize=4, linewidth=1.2, label=bench.variant)
        for config, px, py in zip(configs, x, y, strict=True):
            axes.annotate(f"b{config.batch_size}", (px, py), textcoords="offset points", xytext=(3, 3), fontsize=6,
                          color=line.get_color())
        drawn += 1
    if not drawn:
        axes.text(0.5, 0.5, "no variant was measured", ha="center", transform=axes.transAxes)
    elif min(latencies) > 0 and max(latencies) > 20 * min(latencies):
        axes.set_xscale("log")
    axes.set_xlabel("p99 latency per request (ms)")
    axes.set_ylabel("throughput (samples/s)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(loc="best", fontsize=7, ncol=2 if drawn > 6 else 1)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
