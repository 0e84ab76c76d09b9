"""Figures of a sweep's rows (read back from its dataset: reports never run experiments)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_means(
    rows: list[dict[str, Any]], x: str, y: str, metric: str
) -> tuple[list[Any], list[Any], list[list[float]]]:
    """The metric's mean over every other setting, per (x, y) cell: a swept pair's effect
    with the rest averaged out (NaN where the grid has no such cell)."""
    cells: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for r in rows:
        cells[r[x], r[y]].append(float(r[metric]))
    xs = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells})
    nan = float("nan")
    means = [[fmean(cells[a, b]) if (a, b) in cells else nan for a in xs] for b in ys]
    return xs, ys, means


def heatmap(rows: list[dict[str, Any]], x: str, y: str, metric: str, path: Path) -> Any:
    """The metric's mean on the grid of two swept settings, each cell labelled. Returns the
    (closed) Figure, so that a test reads back the data it plots."""
    xs, ys, means = grid_means(rows, x, y, metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.6 * len(ys) + 2.5))
    image = ax.imshow(means, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for j, line in enumerate(means):
        for i, value in enumerate(line):
            if value == value:  # not NaN
                ax.text(i, j, f"{value:.3g}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"{metric} (mean over the other settings)")
    ax.set_title(f"{metric} by {x} and {y}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cpu, iops) points no other beats: less or equal CPU and more IOPS; by CPU."""
    front: list[tuple[float, float]] = []
    for cpu, iops in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or iops > front[-1][1]:
            front.append((cpu, iops))
    return front


def front(rows: list[dict[str, Any]], path: Path) -> Any:
    """IOPS against CPU % per row, coloured by mode, a marker per job count, and each job
    count's Pareto front (most IOPS for the least CPU) as a line: which settings are worth
    their CPU. Fronts are per job count, as runs of different loads do not compete. Returns
    the (closed) Figure, so that a test reads back the data it plots."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    modes = sorted({str(r["mode"]) for r in rows})
    jobs = sorted({int(r["jobs"]) for r in rows})
    marker = {j: "osv^D<>P*X"[i % 10] for i, j in enumerate(jobs)}
    for r_jobs in jobs:
        for i, mode in enumerate(modes):
            points = [_xy(r) for r in rows if r["mode"] == mode and r["jobs"] == r_jobs]
            if points:
                label = mode if len(jobs) == 1 else f"{mode} x{r_jobs}"
                ax.scatter(
                    *_scaled(points), s=14, color=f"C{i}", marker=marker[r_jobs], label=label
                )
        line = pareto([_xy(r) for r in rows if r["jobs"] == r_jobs])
        label = "Pareto front" if len(jobs) == 1 else f"front x{r_jobs}"
        ax.plot(*_scaled(line), "k-", lw=1, marker=marker[r_jobs], ms=3, label=label)
    ax.set_xlabel("CPU % of the jobs")
    ax.set_ylabel("IOPS (thousands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def _xy(row: dict[str, Any]) -> tuple[float, float]:
    return float(row["cpu_pct"]), float(row["iops"])


def _scaled(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """CPU %, and IOPS in thousands."""
    return [p[0] for p in points], [p[1] / 1000 for p in points]
