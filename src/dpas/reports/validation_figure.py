"""One profile's validation as a figure: the model's lines over the published points."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from dpas.policy import Method
from dpas.reports.validation import Cell, Comparison


def plot_comparison(comparison: Comparison, path: Path, title: str) -> None:
    """IOPS (thousands) and CPU % against jobs: one model line per mode, and the published
    values as squares in the mode's colour (filled where the cell was fitted, hollow where the
    model predicts it), so a fitted cell's agreement is not mistaken for a prediction's."""
    fig, (ax_iops, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode in dict.fromkeys(c.mode for c in comparison.cells):
        cells = sorted((c for c in comparison.cells if c.mode == mode), key=lambda c: c.jobs)
        color = color_of(mode)
        _series(ax_iops, cells, "model_kiops", "published_kiops", color, mode)
        _series(ax_cpu, cells, "model_cpu_pct", "published_cpu_pct", color, mode)
    ticks = sorted({c.jobs for c in comparison.cells})
    for ax, label in ((ax_iops, "IOPS (thousands)"), (ax_cpu, "CPU % of the jobs (fio)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("jobs")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    if not any(c.published_cpu_pct is not None for c in comparison.cells):
        ax_cpu.set_title("the table gives no CPU %: model only", fontsize=9)
    ax_iops.legend(title="line: model; square: published (filled: fitted)", fontsize=8,
                   title_fontsize=8)  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def color_of(mode: str) -> str:
    """A mode's colour, the same in every profile's figure (by dpas.policy.Method's order)."""
    names = [m.value for m in Method]
    return f"C{names.index(mode) % 10}" if mode in names else "0.4"


def _series(ax: Axes, cells: list[Cell], model: str, published: str, color: str, mode: str) -> None:
    """The model's line for one mode, and its published points beside it."""
    ax.plot(
        [c.jobs for c in cells],
        [getattr(c, model) for c in cells],
        color=color,
        marker="o",
        markersize=3,
        label=mode,
    )
    for fitted in (True, False):
        shown = [c for c in cells if c.fitted is fitted and getattr(c, published) is not None]
        ax.scatter(
            [c.jobs for c in shown],
            [getattr(c, published) for c in shown],
            marker="s",
            s=36,
            facecolors=color if fitted else "none",
            edgecolors=color,
            zorder=3,
        )
