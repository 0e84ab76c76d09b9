"""A workload run's tables: each group's measures per mode, and every mode against a baseline.

The paper reports its macro runs normalised to INT = 100: what a method gains or costs is read
against the kernel's default. ``baseline_record`` computes those numbers once, as plain data
for results.json; ``baseline_table`` only shows them.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import Any

from rich.table import Table

from dpas.errors import DpasError
from dpas.reports.bench import label
from dpas.results import ENGINE

#: the DPAS switch's modes in the order the shares are printed
SHARE_MODES = ("PAS", "CP", "OL", "INT")

#: a group's measures shown per row: (GroupResult field, heading, format)
GROUP_COLUMNS = (
    ("iops", "IOPS", ".0f"),
    ("lat_mean_us", "mean µs", ".1f"),
    ("lat_p50_us", "p50 µs", ".1f"),
    ("lat_p99_us", "p99 µs", ".1f"),
    ("lat_p999_us", "p99.9 µs", ".1f"),
    ("cpu_pct", "CPU %", ".1f"),
)

#: what baseline_record normalises: the record's field (foreground's for a workload run)
NORMALISED = ("iops", "cpu_pct", "host_cpu_pct")


class BaselineError(DpasError):
    """The baseline a comparison is normalised to was not run."""


def _mixed(records: list[dict[str, Any]]) -> bool:
    """Whether the records mix dpas's engine and the kernel's method (bench.label's rule)."""
    return len({r.get("engine") == ENGINE for r in records}) > 1


def _by_run(records: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(mode label, jobs) -> its repeats, in the records' order: the unit every mean is over."""
    mixed = _mixed(records)
    runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        runs[label(r, mixed), r["jobs"]].append(r)
    return runs


def _mean(values: list[float | None]) -> float | None:
    """The mean of what was measured (None: a field this backend or run does not fill)."""
    known = [v for v in values if v is not None]
    return fmean(known) if known else None


def _groups_mean(repeats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's measures, meant over the repeats (groups matched by name, in the first
    repeat's order: every repeat runs the same workload)."""
    names = [g["name"] for g in repeats[0]["groups"]]
    out = []
    for name in names:
        same = [g for r in repeats for g in r["groups"] if g["name"] == name]
        row = {"name": name, "role": same[0]["role"], "jobs": same[0]["jobs"]}
        row |= {k: fmean(g[k] for g in same) for k, _, _ in GROUP_COLUMNS}
        out.append(row)
    return out


def _shares_mean(repeats: list[dict[str, Any]]) -> dict[str, float] | None:
    """DPAS's mode shares meant over the repeats (None where the run has none)."""
    shares = [r["mode_share"] for r in repeats if r.get("mode_share")]
    if not shares:
        return None
    return {m: fmean(s.get(m, 0.0) for s in shares) for m in SHARE_MODES}


def shares_text(shares: dict[str, float]) -> str:
    """Mode shares as the paper's breakdown reads: "PAS 40% CP 30% OL 10% INT 20%"."""
    return " ".join(f"{m} {100 * shares.get(m, 0.0):.0f}%" for m in SHARE_MODES)


def group_tables(records: list[dict[str, Any]]) -> list[Table]:
    """One table per mode of the workload runs (steady runs have no groups: bench's tables
    show them): a row per group and job count, then the host's CPU % (background included:
    it is part of the price), DPAS's mode shares in the caption. Means over repeats."""
    by_mode: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for (mode, jobs), repeats in _by_run([r for r in records if r.get("groups")]).items():
        by_mode[mode][jobs] = repeats
    return [_group_table(mode, runs) for mode, runs in by_mode.items()]


def _group_table(mode: str, runs: dict[int, list[dict[str, Any]]]) -> Table:
    """One mode's table: a section per job count."""
    repeats = len(next(iter(runs.values())))
    title = f"{mode}: {runs[next(iter(runs))][0]['workload']}" + (
        f" (mean of {repeats} runs)" if repeats > 1 else ""
    )
    table = Table(title=title, title_justify="left")
    for name in ("Group", "Role", "Jobs", *(heading for _, heading, _ in GROUP_COLUMNS)):
        table.add_column(name, justify="left" if name in ("Group", "Role") else "right")
    captions = []
    for jobs in sorted(runs):
        if table.rows:
            table.add_section()
        for g in _groups_mean(runs[jobs]):
            cells = (format(g[k], f) for k, _, f in GROUP_COLUMNS)
            table.add_row(g["name"], g["role"], str(g["jobs"]), *cells)
        host = _mean([r.get("host_cpu_pct") for r in runs[jobs]])
        blank = [""] * (len(GROUP_COLUMNS) - 1)
        table.add_row("host", "all jobs", "", *blank, "-" if host is None else f"{host:.1f}")
        shares = _shares_mean(runs[jobs])
        if shares is not None:
            where = f" ({jobs} jobs)" if len(runs) > 1 else ""
            captions.append(f"mode share{where}: {shares_text(shares)}")
    if captions:
        table.caption = "; ".join(captions)
        table.caption_justify = "left"
    return table


def baseline_record(records: list[dict[str, Any]], baseline: str = "INT") -> list[dict[str, Any]]:
    """Per mode (the records' order) and job count: the foreground's IOPS and CPU % and the
    host's CPU % (means over repeats), and each as a percentage of ``baseline``'s at the same
    job count (``<field>_rel``; None where either is unknown or the baseline's is 0). Where
    the records mix dpas's engine and the kernel, a mode is read against the baseline of the
    same kind. Raises BaselineError if ``baseline`` was not run at all."""
    runs = _by_run(records)
    modes = list(dict.fromkeys(r["mode"] for r in records))
    if baseline not in modes:
        raise BaselineError(
            f"baseline {baseline} is not among the runs ({', '.join(modes) or 'none'}): "
            "run it too, or name one of these as the baseline"
        )
    mixed = _mixed(records)
    means = {
        key: {k: _mean([r.get(k) for r in repeats]) for k in NORMALISED}
        for key, repeats in runs.items()
    }
    rows = []
    for (mode, jobs), repeats in runs.items():
        base_key = (label({"mode": baseline, "engine": repeats[0].get("engine")}, mixed), jobs)
        base = means.get(base_key, {})
        row: dict[str, Any] = {"mode": mode, "jobs": jobs, "repeats": len(repeats)}
        row["baseline"] = base_key[0]
        row |= means[mode, jobs]
        row |= {f"{k}_rel": _percent(means[mode, jobs][k], base.get(k)) for k in NORMALISED}
        rows.append(row)
    return rows


def _percent(value: float | None, base: float | None) -> float | None:
    """``value`` as a percentage of ``base`` (None where it cannot be one)."""
    return None if value is None or not base else 100 * value / base


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def baseline_table(records: list[dict[str, Any]], baseline: str = "INT") -> Table:
    """baseline_record as the paper prints it: each mode's foreground IOPS, foreground CPU %
    and host CPU % as a percentage of the baseline's (= 100), the raw values beside them."""
    rows = baseline_record(records, baseline)
    several = len({r["jobs"] for r in rows}) > 1
    table = Table(title=f"Normalised to {baseline} = 100 (means over repeats)")
    table.title_justify = "left"
    heads = ("Mode", *(("Jobs",) if several else ()), "IOPS", f"IOPS/{baseline}")
    heads += ("fg CPU %", f"fg CPU/{baseline}", "host CPU %", f"host CPU/{baseline}")
    for name in heads:
        table.add_column(name, justify="left" if name == "Mode" else "right")
    for r in rows:
        cells = [r["mode"], *((str(r["jobs"]),) if several else ())]
        cells += [_cell(r["iops"], ".0f"), _cell(r["iops_rel"], ".0f")]
        cells += [_cell(r["cpu_pct"], ".1f"), _cell(r["cpu_pct_rel"], ".0f")]
        cells += [_cell(r["host_cpu_pct"], ".1f"), _cell(r["host_cpu_pct_rel"], ".0f")]
        table.add_row(*cells)
    return table
