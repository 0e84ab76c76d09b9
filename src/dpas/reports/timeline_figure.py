"""One workload run over time: what each group got, what DPAS's switch did, and what the
foreground waited, on one time axis, so that a mode change can be read against the load
that caused it and the latency it bought."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dpas.errors import DpasError
from dpas.reports.workload import shares_text
from dpas.workload import Workload

#: the figure's default run: the adaptive method, whose switch the middle panel shows
DEFAULT_MODE = "DPAS"
#: a CPU's switch mode before its first change (the kernel's and the simulator's start)
FIRST_MODE = "PAS"
MODE_COLORS = {"PAS": "tab:green", "CP": "tab:red", "OL": "tab:orange", "INT": "tab:blue"}

#: one CPU's modes over the run: (start ms, length ms, mode)
Spans = list[tuple[float, float, str]]


class PickError(DpasError):
    """The run asked for is not among the records."""


def pick_run(records: list[dict[str, Any]], mode: str | None = None) -> dict[str, Any]:
    """The run the figure shows: the first repeat of ``mode`` (its first job count), by
    default DPAS where it ran (the switch is what the figure explains), else the last mode."""
    if not records:
        raise PickError("no runs to draw a timeline of")
    modes = list(dict.fromkeys(r["mode"] for r in records))
    if mode is None:
        mode = DEFAULT_MODE if DEFAULT_MODE in modes else modes[-1]
    if mode not in modes:
        raise PickError(f"no {mode} run to draw a timeline of (modes run: {', '.join(modes)})")
    runs = [r for r in records if r["mode"] == mode]
    first = min(r["repeat"] for r in runs)
    return next(r for r in runs if r["repeat"] == first)


def mode_spans(
    timeline: list[tuple[float, int, str, str]], cpus: Iterable[int], runtime_ms: float
) -> dict[int, Spans]:
    """Each CPU's modes as bars: every CPU starts in PAS at 0 and changes at the timeline's
    (ms, cpu, old, new) entries (the rule dpas.results.mode_shares counts by)."""
    since = {cpu: (0.0, FIRST_MODE) for cpu in sorted(cpus)}
    spans: dict[int, Spans] = {cpu: [] for cpu in since}
    for ms, cpu, _, new in sorted(timeline):
        if cpu not in since:
            continue
        start, mode = since[cpu]
        at = min(ms, runtime_ms)
        if at > start:
            spans[cpu].append((start, at - start, mode))
        since[cpu] = (at, new)
    for cpu, (start, mode) in since.items():
        if runtime_ms > start:
            spans[cpu].append((start, runtime_ms - start, mode))
    return spans


def _roles(record: dict[str, Any]) -> dict[str, str]:
    """group name -> role ("foreground" where the record does not say)."""
    return {g["name"]: g["role"] for g in record.get("groups") or []}


def _steps(series: dict[str, Any], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A bin's value held across its width, the last bin's included (x in s)."""
    y = np.array([*values, values[-1]] if values else [], dtype=float)
    return np.arange(len(y)) * float(series["bin_ms"]) / 1000, y


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9)
    ax.set_yticks([])


def _plot_iops(ax: Axes, record: dict[str, Any]) -> None:
    """Each group's IOPS per bin: the foreground solid, the load around it dashed."""
    series, roles = record.get("series"), _roles(record)
    if not series:
        _no_data(ax, "no series in this record")
        return
    for name, s in series["groups"].items():
        style = "-" if roles.get(name, "foreground") == "foreground" else "--"
        x, iops = _steps(series, s["iops"])
        ax.plot(x, iops / 1000, ls=style, drawstyle="steps-post", label=name)
    ax.set_ylabel("IOPS (thousands)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7, ncol=4)


def _plot_modes(ax: Axes, record: dict[str, Any], cpus: Iterable[int]) -> None:
    """Each CPU's switch mode as coloured bars; a method without a switch holds one mode."""
    timeline = record.get("timeline")
    if timeline is None:
        _no_data(ax, f"mode: {record['mode']} throughout")
        return
    shown = sorted({t[1] for t in timeline} | set(cpus)) or [0]
    spans = mode_spans(timeline, shown, float(record["runtime_s"]) * 1000)
    for row, cpu in enumerate(shown):
        bars = [(start / 1000, length / 1000) for start, length, _ in spans[cpu]]
        colors = [MODE_COLORS.get(mode, "0.5") for _, _, mode in spans[cpu]]
        ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=colors)
    ax.set_yticks(range(len(shown)), [f"CPU {c}" for c in shown])
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.legend(
        handles=[Patch(color=c, label=m) for m, c in MODE_COLORS.items()],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize=7,
        ncol=4,
    )
    if record.get("mode_share"):
        ax.set_title(f"mode share: {shares_text(record['mode_share'])}", fontsize=8, loc="left")


def _plot_latency(ax: Axes, record: dict[str, Any]) -> None:
    """The foreground groups' mean latency per bin (a bin without I/O is a gap, not 0)."""
    series, roles = record.get("series"), _roles(record)
    if not series:
        _no_data(ax, "no series in this record")
        return
    for name, s in series["groups"].items():
        if roles.get(name, "foreground") != "foreground":
            continue
        x, lat = _steps(series, s["lat_us"])
        lat[_steps(series, s["iops"])[1] == 0] = np.nan
        ax.plot(x, lat, drawstyle="steps-post", label=name)
    ax.set_ylabel("mean latency (µs)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7)


def plot_timeline(
    record: dict[str, Any], path: Path, title: str, cpus: Iterable[int] = ()
) -> Figure:
    """One run on one time axis: each group's IOPS per bin (top), each CPU's DPAS mode
    (middle; ``cpus`` adds the workload's CPUs that never changed mode, which the timeline
    cannot name), the foreground's mean latency per bin (bottom). Returns the (closed)
    figure, whose artists hold the data drawn."""
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 3]}
    )
    _plot_iops(top, record)
    _plot_modes(middle, record, cpus)
    _plot_latency(bottom, record)
    for ax in (top, middle, bottom):
        ax.grid(alpha=0.3, axis="x")
    bottom.set_xlim(0, float(record["runtime_s"]))
    bottom.set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def workload_cpus(results: dict[str, Any]) -> list[int]:
    """The CPUs a results.json's workload may run on (what its mode shares are over): the
    simulated host's CPUs where it says, else those its groups name ("split": the CPUs the
    timeline names, the only ones known to have been online)."""
    workload = Workload.from_record((results.get("config") or {}).get("workload"))
    online = ((results.get("profile") or {}).get("host") or {}).get("cpus")
    if online is None:
        seen = [cpu for r in results.get("records", []) for _, cpu, _, _ in r.get("timeline") or []]
        named = [c for g in workload.groups if g.cpus != "split" for c in g.allowed(1)]
        online = max([*seen, *named, 0]) + 1
    return workload.cpus(online)
