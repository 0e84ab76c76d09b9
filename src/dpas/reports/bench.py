"""bench.sh's tables, results.csv, and the figure of IOPS and CPU % against jobs."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.table import Table

from dpas.bench.waf import waf_of
from dpas.reports.stats import Summary
from dpas.results import BREAKDOWN, CSV_COLUMNS, ENGINE, TABLE_COLUMNS, WORKLOAD_COLUMNS, csv_row
from dpas.sim.profile import Support
from dpas.sizes import show_size

#: what ``dpas compare --metric`` names, each a record field and whether higher is better; the
#: per-mode tables show these cells with their spread over repeats
METRICS = {"iops": ("iops", True), "lat": ("lat_mean_us", False), "cpu": ("cpu_pct", False)}


def label(record: dict[str, Any], mixed: bool) -> str:
    """A run's row: its mode, and where a sweep mixes fio and dpas's engine (dpas vm bench
    --engine fio,dpas), who completed its I/Os: the kernel's method or the engine's."""
    if not mixed:
        return str(record["mode"])
    return f"{record['mode']} ({'engine' if record.get('engine') == ENGINE else 'kernel'})"


def averaged(records: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """mode (label) -> jobs -> the mean over repeats of what bench.sh prints (breakdown
    summed); with two repeats or more, ``spread``: the METRICS' Summary (mean and interval)."""
    mixed = len({r.get("engine") == ENGINE for r in records}) > 1
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[label(r, mixed), r["jobs"]].append(r)
    table: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for (mode, jobs), rs in groups.items():
        row: dict[str, Any] = {
            k: fmean(r[k] for r in rs) for k, _, _ in TABLE_COLUMNS if rs[0].get(k) is not None
        }
        if rs[0].get("overslept") is not None and any(r["sleeps_taken"] for r in rs):
            row["verdicts"] = tuple(fmean(r[k] for r in rs) for k in ("overslept", "underslept"))
        row["repeats"] = len(rs)
        if len(rs) > 1:
            row["spread"] = {
                k: Summary.of([r[k] for r in rs]) for k, _ in METRICS.values() if k in row
            }
        if rs[0]["breakdown"] is not None:
            row["breakdown"] = {k: sum(r["breakdown"][k] for r in rs) for k in rs[0]["breakdown"]}
        if rs[0].get("waf"):
            row["waf"] = pooled_waf(rs)
        table[mode][jobs] = row
    return table


def pooled_waf(records: list[dict[str, Any]]) -> dict[int, float | None]:
    """iu -> WAF_IU of the records' writes together (their media bytes over their bytes
    written: repeats pooled, as one longer run)."""
    sums: dict[int, dict[str, int]] = {}
    for r in records:
        for entry in r.get("waf") or []:
            into = sums.setdefault(entry["iu"], {"media": 0, "logical": 0})
            into["media"] += entry["media"]
            into["logical"] += entry["logical"]
    return {iu: None if (w := waf_of(s)) is None else float(w) for iu, s in sorted(sums.items())}


#: marks a row whose run is beyond what its profile's sources cover
BEYOND = "†"


def beyond_sources(document: dict[str, Any]) -> Callable[[int], str]:
    """jobs -> why a run of this results.json lies beyond its profile's sources ("" if it
    does not, or if no profile says how far its sources reach: real runs, old files)."""
    support = (document.get("profile") or {}).get("support")
    bs = document.get("config", {}).get("bs", 4096)
    if not support:
        return lambda jobs: ""
    return partial(Support(**support).gap, bs)


def footnote(document: dict[str, Any]) -> str:
    """The line under the tables for the marked rows ("" when none is)."""
    beyond = beyond_sources(document)
    gaps = sorted({g for g in (beyond(r["jobs"]) for r in document["records"]) if g})
    if not gaps:
        return ""
    sources = document["profile"]["support"]["sources"]
    return (
        f"{BEYOND} beyond what the profile's sources cover ({'; '.join(gaps)}): the model's "
        f"guess, not a prediction it can stand behind. Its sources: {sources}"
    )


def mode_tables(
    records: list[dict[str, Any]], beyond: Callable[[int], str] = lambda jobs: ""
) -> list[Table]:
    """One table per mode: Jobs IOPS lat_us cpu% ctx, and what the backend measured beyond
    bench.sh: the drive's interrupts, the sleeps' verdicts (the engine), the DPAS breakdown.
    A row ``beyond`` names a reason for is marked with BEYOND."""
    tables = []
    for mode, rows in averaged(records).items():
        dpas = any("breakdown" in row for row in rows.values())
        shown = [c for c in TABLE_COLUMNS if any(c[0] in row for row in rows.values())]
        verdicts = any("verdicts" in row for row in rows.values())
        ius = sorted({iu for row in rows.values() for iu in row.get("waf", {})})
        repeats = next(iter(rows.values()))["repeats"]
        title = mode + (f" (mean of {repeats} runs) ±95% CI" if repeats > 1 else "")
        table = Table(title=title, title_justify="left")
        names = ("Jobs", *(heading for _, heading, _ in shown))
        names += ("over/under",) if verdicts else ()
        names += tuple(f"WAF_IU\n{show_size(iu)}" for iu in ius)
        for name in names + (("breakdown",) if dpas else ()):
            table.add_column(name, justify="left" if name == "breakdown" else "right")
        for jobs in sorted(rows):
            row = rows[jobs]
            mark = BEYOND if beyond(jobs) else ""
            cells = [f"{jobs}{mark}", *(_cell(row, k, f) for k, _, f in shown)]
            if verdicts:
                over, under = row.get("verdicts", (0, 0))
                cells.append(f"{over:.0f}/{under:.0f}")
            for iu in ius:
                waf = row.get("waf", {}).get(iu)
                cells.append("-" if waf is None else f"{waf:.3f}")
            if dpas:
                b = row["breakdown"]
                cells.append(" ".join(f"{k}:{b[k]}" for k in BREAKDOWN))
            table.add_row(*cells)
        tables.append(table)
    return tables


def _cell(row: dict[str, Any], name: str, fmt: str) -> str:
    """A table cell: the mean, and its interval where the row has one for it."""
    summary = row.get("spread", {}).get(name)
    return format(row[name], fmt) if summary is None else summary.shown(fmt)


def write_csv(records: list[dict[str, Any]], path: Path) -> None:
    """results.csv; a steady sweep's (no record of a workload) without the workload columns,
    as dpas wrote it before workloads, byte for byte."""
    steady = not any(r.get("workload") for r in records)
    keep = [i for i, c in enumerate(CSV_COLUMNS) if not (steady and c in WORKLOAD_COLUMNS)]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([CSV_COLUMNS[i] for i in keep])
        for r in records:
            row = csv_row(r)
            out.writerow([row[i] for i in keep])


def plot(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """IOPS and CPU % against jobs, one line per mode (means over repeats)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_iops, ax_cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, rows in averaged(records).items():
        jobs = sorted(rows)
        ax_iops.plot(jobs, [rows[j]["iops"] / 1000 for j in jobs], marker="o", label=mode)
        ax_cpu.plot(jobs, [rows[j]["cpu_pct"] for j in jobs], marker="o", label=mode)
    for ax, label in ((ax_iops, "IOPS (thousands)"), (ax_cpu, "CPU % of the jobs (fio)")):
        ax.set_xscale("log", base=2)
        ticks = sorted({r["jobs"] for r in records})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("jobs")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    ax_iops.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
