"""The lab pages' pictures for every method of an emulation, in one figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from dpas.emulate import Emulation
from dpas.policy import Case

COLORS = {"device": "0.6", "sleep": "tab:blue", "wake": "tab:orange", "app": "tab:red"}


#: I/Os drawn by default: the pages show about this many, and more become a solid block
DEFAULT_SPAN = 1000


def default_span(ios: int) -> tuple[int, int]:
    """The last DEFAULT_SPAN I/Os: by then LHP has had its windows and PAS has settled."""
    return max(0, ios - DEFAULT_SPAN), ios


def _shown(value: float | None, spec: str, scale: float = 1.0) -> str:
    """``value`` x ``scale`` formatted by ``spec``, or "-" where the statistic is undefined."""
    return "-" if value is None else format(value * scale, spec)


def plot_emulation(result: Emulation, path: Path, span: tuple[int, int] | None = None) -> Figure:
    """One row per method: device time, sleep, wake and app latency over the I/Os of ``span``
    (start, end) with LHP's window boundaries dotted, and beside it the counts of the four
    update rules over the whole run. Returns the (closed) figure, whose artists hold the data
    drawn."""
    methods = list(result.logs)
    start, end = span or default_span(len(result.trace))
    fig, axes = plt.subplots(
        len(methods),
        2,
        figsize=(13, 2.8 * len(methods) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [5, 1]},
    )
    for row, method in enumerate(methods):
        log = result.logs[method]
        cut = slice(start, end)
        io = np.arange(start, end)
        device, sleep, app = log.device_us[cut], log.sleep_us[cut], log.app_us[cut]
        ax, bars = axes[row]
        ax.plot(io, device, color=COLORS["device"], lw=0.8, label="device time (trace)")
        slept = sleep > 0
        if slept.any():
            ax.plot(
                io,
                np.where(slept, log.wake_us[cut], np.nan),
                color=COLORS["wake"],
                lw=0.6,
                label="wake (sleep + cs)",
            )
            ax.plot(
                io, np.where(slept, sleep, np.nan), color=COLORS["sleep"], lw=1.0, label="sleep"
            )
        ax.plot(io, app, color=COLORS["app"], lw=0.6, alpha=0.7, label="app latency")
        for x in np.flatnonzero(np.diff(log.epoch[cut]) > 0) + start + 1:
            ax.axvline(x, color="0.2", lw=0.8, ls=":")
        summary = result.summaries[row]
        windows = int(log.epoch.max()) if log.epoch.max() > 0 else 0
        ax.set_title(
            f"{method.upper()}: mean app latency {_shown(summary.app_mean_us, '.1f')} µs over the "
            f"run, busy {_shown(summary.busy_share, '.0f', 100)}% of the wait"
            + (f"; LHP windows closed: {windows} (dotted)" if windows else ""),
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("µs")
        top = np.percentile(np.concatenate([device, app]), 99.5) * 1.15
        ax.set_ylim(0, max(top, 1.0))
        ax.set_xlim(start, max(end - 1, start + 1))
        ax.legend(loc="upper left", fontsize=7, ncol=4)
        counts = [summary.cases[c.label] for c in Case]
        bars.bar(
            [c.short for c in Case],
            counts,
            color=["tab:green", "tab:olive", "tab:purple", "tab:cyan"],
        )
        bars.set_title("update rules", fontsize=9)
        bars.tick_params(labelsize=7)
    axes[-1][0].set_xlabel("I/O")
    trace = result.trace
    fig.suptitle(
        f"{trace.name}: I/Os {start}-{end - 1} of {len(trace)}, {result.config.model.value} model",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
