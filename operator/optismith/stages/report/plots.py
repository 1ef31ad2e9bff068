"""PNG plots for the report (matplotlib with the Agg backend: no display, no GUI toolkit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optismith.results import Candidate


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


def tradeoff(candidates: Sequence[Candidate], path: Path, title: str, *, with_target: bool = False) -> None:
    """Latency against size, coloured by accuracy drop; the Pareto front is ringed and joined."""
    plt = _pyplot()
    points = [c for c in candidates if c.latency_p50_ms is not None and c.size_bytes is not None]
    figure, axes = plt.subplots(figsize=(8, 5))
    if points:
        sizes = np.array([c.size_bytes or 0 for c in points], dtype=np.float64) / 1024
        latency = np.array([c.latency_p50_ms or 0.0 for c in points])
        drops = np.array([np.nan if c.accuracy_drop is None else c.accuracy_drop * 100 for c in points])
        scatter = axes.scatter(sizes, latency, c=np.nan_to_num(drops, nan=0.0), cmap="viridis_r", s=60,
                               edgecolors="none", zorder=3)
        figure.colorbar(scatter, ax=axes, label="accuracy drop (%)")
        front = sorted((c for c in points if c.pareto), key=lambda c: c.size_bytes or 0)
        if front:
            axes.plot([(c.size_bytes or 0) / 1024 for c in front], [c.latency_p50_ms for c in front],
                      color="crimson", linewidth=1, zorder=2, label="Pareto front")
            axes.scatter([(c.size_bytes or 0) / 1024 for c in front], [c.latency_p50_ms for c in front],
                         s=160, facecolors="none", edgecolors="crimson", zorder=4)
            axes.legend(loc="best")
        for candidate, x, y in zip(points, sizes, latency, strict=True):
            label = f"{candidate.variant}@{candidate.target}" if with_target else candidate.variant
            label += "" if candidate.passed else " (failed gates)"
            axes.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    else:
        axes.text(0.5, 0.5, "no variant has both a latency and a size", ha="center", transform=axes.transAxes)
    if points and max(sizes) > 20 * max(min(sizes), 1e-3):
        axes.set_xscale("log")  # artifacts span orders of magnitude (int8 vs float SavedModel)
    axes.margins(x=0.15, y=0.1)
    axes.set_xlabel("artifact size (KiB)")
    axes.set_ylabel("p50 latency (ms)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
