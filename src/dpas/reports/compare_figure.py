"""``dpas compare --figure``: B's ratio to A per cell, with its interval, coloured by verdict."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt

from dpas.reports.bench import METRICS
from dpas.reports.compare import BETTER, CANNOT_TELL, SAME, WORSE, Comparison, cell_name

#: a verdict's colour: better green, worse red, the same grey, cannot tell hollow blue
COLORS = {BETTER: "tab:green", WORSE: "tab:red", SAME: "tab:gray", CANNOT_TELL: "tab:blue"}


def plot_ratios(comparison: Comparison, path: Path) -> None:
    """One row per cell (A's order, top to bottom): the ratio as a point, its 95% interval
    (delta method) as a bar where both sides have one, a line at 1 (no change). Above 1 is
    B better, whatever the metric. Cells without a ratio (a mean of 0 or less) are left out."""
    cells = [c for c in comparison.cells if c.ratio is not None]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * max(len(cells), 1)))
    for row, cell in enumerate(reversed(cells)):
        color = COLORS[cell.verdict]
        assert cell.ratio is not None
        ax.errorbar(
            cell.ratio, row, xerr=cell.ratio_half_width, fmt="o", color=color, capsize=3,
            mfc="none" if cell.verdict == CANNOT_TELL else color,
        )  # fmt: skip
    ax.set_yticks(range(len(cells)), [cell_name(c.key) for c in reversed(cells)], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    field, higher = METRICS[comparison.metric]
    ax.set_xlabel(
        f"B's {field} against A's ({'B / A' if higher else 'A / B'}: above 1, B is better)"
    )
    ax.grid(axis="x", alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=color, label=verdict)
        for verdict, color in COLORS.items()
        if any(c.verdict == verdict for c in cells)
    ]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title(f"B: {comparison.b.path}\nA: {comparison.a.path}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
