"""``dpas waf --plot``: WAF_IU by I/O size, one series per IU: a trace's, or the worst case."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from dpas.reports.waf import WORST_LENGTHS, TraceReport, WorstReport, ratio_text
from dpas.sizes import show_size


def _axes_done(fig: Figure, title: str, path: Path) -> Figure:
    """The shared finish: log2 axes, sizes as fio writes them, WAF_IU 1 marked; saved, closed."""
    (ax,) = fig.axes
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(LogLocator(base=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: show_size(round(x))))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_yscale("log", base=2)  # 1 to the IU over a sector (128 for 64k)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.axhline(1.0, color="black", linewidth=0.8)  # no amplification
    ax.set_xlabel("I/O size (bytes)")
    ax.set_ylabel("WAF_IU (media bytes / bytes written)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def plot_trace(report: TraceReport, path: Path) -> Figure:
    """Each IU's WAF_IU of every I/O size the trace writes (the media its writes of that size
    cost over their bytes), a marker per size joined by a line; the whole trace's WAF_IU in
    the legend. Returns the closed figure (its axes hold what was drawn)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for tally in report.ius:
        t = tally.total
        ax.plot(
            [s.length for s in tally.sizes],
            [float(s.waf) for s in tally.sizes],
            marker="o", markersize=4, linewidth=1,
            label=f"IU {show_size(t.iu)} (trace: {ratio_text(t.waf)})",
        )  # fmt: skip
    return _axes_done(fig, f"{report.trace}: {report.writes} writes", path)


def plot_worst(report: WorstReport, path: Path) -> Figure:
    """Each IU's worst WAF_IU for every length from 512 B to 1 MiB in 512 B steps (a write
    starting a sector short of an IU boundary). Returns the closed figure."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for iu in report.ius:
        ax.plot(
            WORST_LENGTHS,
            [m / n for m, n in zip(report.media(iu), WORST_LENGTHS, strict=True)],
            linewidth=1, label=f"IU {show_size(iu)}",
        )  # fmt: skip
    return _axes_done(fig, "worst case: a write starting 512 bytes short of an IU boundary", path)


def draw(report: TraceReport | WorstReport, path: Path) -> Figure:
    """The report's figure: a trace's WAF_IU by size, or the worst case."""
    if isinstance(report, TraceReport):
        return plot_trace(report, path)
    return plot_worst(report, path)
