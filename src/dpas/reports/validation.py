"""The simulator against the tables its profiles were calibrated on, cell by cell.

``dpas validate`` runs each profile's published grid and hands the records here: ``compare``
turns them into one ``Cell`` per (mode, jobs) beside the published values, and a ``Summary``
of the errors, kept apart for the cells the profile was fitted to and the ones it predicts
(a model fitted to a cell says little by matching it). A comparison with a user's table
(``dpas validate --against FILE``) carries an ``Against``: the file and its block size; only
a 4 KiB cell can count as fitted there. Everything here reads records; nothing runs.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from dpas.reports.bench import BEYOND, averaged
from dpas.reports.published import TABLE_BS, PublishedValues
from dpas.sim.profile import Published, Support
from dpas.sizes import show_size

SCHEMA = "dpas.validate/1"

#: a cell is "within" when its IOPS are within this many percent of the published...
IOPS_TOLERANCE_PCT = 5.0
#: ...and its CPU within this many percentage points (where the table gives CPU)
CPU_TOLERANCE_PTS = 5.0


@dataclass(frozen=True, slots=True)
class Cell:
    """One (mode, jobs) of a profile's grid: the model's mean over repeats beside the table's
    value (None where the table gives none), and the error of the one against the other."""

    profile: str
    device: str
    role: str
    mode: str
    jobs: int
    fitted: bool
    repeats: int
    model_kiops: float
    published_kiops: float | None
    #: model / published - 1, in percent
    iops_error_pct: float | None
    model_cpu_pct: float
    published_cpu_pct: float | None
    #: model - published, in percentage points (CPU is a percentage already)
    cpu_error_pts: float | None
    #: why the cell lies beyond what the profile's sources cover ([support]); "" within
    beyond: str = ""

    @property
    def compared(self) -> bool:
        """Whether the table gives this cell anything to compare with."""
        return self.published_kiops is not None or self.published_cpu_pct is not None

    @property
    def within(self) -> bool:
        """Compared, and every published value within the tolerance."""
        iops_ok = self.iops_error_pct is None or abs(self.iops_error_pct) <= IOPS_TOLERANCE_PCT
        cpu_ok = self.cpu_error_pts is None or abs(self.cpu_error_pts) <= CPU_TOLERANCE_PTS
        return self.compared and iops_ok and cpu_ok


@dataclass(frozen=True, slots=True)
class ErrorStats:
    """|error| over a set of cells: how many, the mean and the worst (None over no cells)."""

    cells: int
    mean_abs: float | None
    worst_abs: float | None

    @classmethod
    def of(cls, errors: list[float]) -> ErrorStats:
        if not errors:
            return cls(0, None, None)
        size = [abs(e) for e in errors]
        return cls(len(size), fmean(size), max(size))


@dataclass(frozen=True, slots=True)
class Summary:
    """One profile's (so one drive's) agreement with its table."""

    profile: str
    table: str
    device: str
    role: str
    #: cells the table gives at least one value for
    cells: int
    iops_fitted: ErrorStats  # percent
    iops_predicted: ErrorStats
    cpu_fitted: ErrorStats  # percentage points
    cpu_predicted: ErrorStats
    #: compared cells whose every published value is within tolerance
    within: int
    #: cells with published IOPS within IOPS_TOLERANCE_PCT, and with published CPU within
    #: CPU_TOLERANCE_PTS
    within_iops: int
    within_cpu: int


@dataclass(frozen=True, slots=True)
class Against:
    """A user's table a profile was compared with (``--against``): the file as given, and the
    block size in bytes of every cell in it."""

    file: str
    bs: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """A profile's grid against its table: the published section, the cells, the summary;
    ``against`` where the table is a user's (None: the profile's own [published] table)."""

    profile: str
    published: Published
    values: PublishedValues
    cells: tuple[Cell, ...]
    summary: Summary
    against: Against | None = None


def compare(
    profile: str,
    published: Published,
    values: PublishedValues,
    records: list[dict[str, Any]],
    against: Against | None = None,
    support: Support | None = None,
) -> Comparison:
    """The cells of ``records`` (RunResult dicts of ``published``'s grid, or of the grid of a
    user's table ``against``) against ``values``. A cell is fitted when [published] fitted
    names it and, for a user's table, the table is of 4 KiB cells as the fit was: the same
    mode and job count at another block size is a prediction."""
    fitted = {(mode.value, jobs) for mode, jobs in published.fitted}
    if against is not None and against.bs != TABLE_BS:
        fitted = set()
    bs = TABLE_BS if against is None else against.bs
    cells = tuple(
        replace(
            _cell(profile, values, mode, jobs, row, (mode, jobs) in fitted),
            beyond=support.gap(bs, jobs) if support else "",
        )
        for mode, rows in averaged(records).items()
        for jobs, row in sorted(rows.items())
    )
    summary = summarize(profile, values, cells)
    return Comparison(profile, published, values, cells, summary, against)


def _cell(
    profile: str,
    values: PublishedValues,
    mode: str,
    jobs: int,
    row: dict[str, Any],
    fitted: bool,
) -> Cell:
    model_kiops = row["iops"] / 1000
    published_kiops = values.kiops.get((mode, jobs))
    published_cpu = values.cpu_pct.get((mode, jobs))
    iops_error = None
    if published_kiops:  # a published 0 has no relative error
        iops_error = (model_kiops / published_kiops - 1) * 100
    return Cell(
        profile=profile,
        device=values.device,
        role=values.role,
        mode=mode,
        jobs=jobs,
        fitted=fitted,
        repeats=row["repeats"],
        model_kiops=model_kiops,
        published_kiops=published_kiops,
        iops_error_pct=iops_error,
        model_cpu_pct=row["cpu_pct"],
        published_cpu_pct=published_cpu,
        cpu_error_pts=None if published_cpu is None else row["cpu_pct"] - published_cpu,
    )


def summarize(profile: str, values: PublishedValues, cells: tuple[Cell, ...]) -> Summary:
    """Mean and worst |error|, fitted and predicted apart, and the cells within tolerance."""

    def errors(kind: str, fitted: bool) -> ErrorStats:
        found = [getattr(c, kind) for c in cells if c.fitted is fitted]
        return ErrorStats.of([e for e in found if e is not None])

    iops = [c.iops_error_pct for c in cells if c.iops_error_pct is not None]
    cpu = [c.cpu_error_pts for c in cells if c.cpu_error_pts is not None]
    return Summary(
        profile=profile,
        table=values.table,
        device=values.device,
        role=values.role,
        cells=sum(c.compared for c in cells),
        iops_fitted=errors("iops_error_pct", True),
        iops_predicted=errors("iops_error_pct", False),
        cpu_fitted=errors("cpu_error_pts", True),
        cpu_predicted=errors("cpu_error_pts", False),
        within=sum(c.within for c in cells),
        within_iops=sum(abs(e) <= IOPS_TOLERANCE_PCT for e in iops),
        within_cpu=sum(abs(e) <= CPU_TOLERANCE_PTS for e in cpu),
    )


# -- the screen --------------------------------------------------------------------------------


def cell_text(cell: Cell) -> str:
    """``168.6k/169.8k -0.7%*`` over ``95.7/95.7 +0.0``: model/published and the error
    (IOPS in percent, CPU in points); ``*`` marks a fitted cell, ``-`` a value not published."""
    iops = f"{cell.model_kiops:.1f}k/"
    if cell.published_kiops is None:
        iops += "-"
    else:
        iops += f"{cell.published_kiops:.1f}k"
    if cell.iops_error_pct is not None:
        iops += f" {_marked(cell.iops_error_pct, IOPS_TOLERANCE_PCT, '%')}"
    cpu = f"{cell.model_cpu_pct:.1f}/"
    if cell.cpu_error_pts is None:
        cpu += "-"
    else:
        cpu += f"{cell.published_cpu_pct:.1f} {_marked(cell.cpu_error_pts, CPU_TOLERANCE_PTS)}"
    return iops + ("*" if cell.fitted else "") + (BEYOND if cell.beyond else "") + "\n" + cpu


def _marked(error: float, tolerance: float, unit: str = "") -> str:
    """The signed error, in yellow beyond the tolerance."""
    text = f"{error:+.1f}{unit}"
    return text if abs(error) <= tolerance else f"[yellow]{text}[/yellow]"


LEGEND = (
    "kIOPS and error %, under it CPU % and error in points; * fitted cell, - not published, "
    f"{BEYOND} beyond what the profile's sources cover"
)


def cell_table(comparison: Comparison) -> Table:
    """Rows are modes, columns job counts; each cell the IOPS line over the CPU line."""
    table = Table()
    jobs = sorted({c.jobs for c in comparison.cells})
    table.add_column("mode", no_wrap=True)
    for j in jobs:
        table.add_column(f"{j} job{'s' if j > 1 else ''}", justify="right", no_wrap=True)
    by_cell = {(c.mode, c.jobs): c for c in comparison.cells}
    for mode in dict.fromkeys(c.mode for c in comparison.cells):
        table.add_row(
            mode, *(cell_text(by_cell[mode, j]) if (mode, j) in by_cell else "" for j in jobs)
        )
    return table


def title(comparison: Comparison) -> str:
    """What the table compares: the profile, and the table and drive it was published on."""
    role = short_role(comparison.values.role)
    return f"{comparison.profile}: model/published ({source(comparison)}, {role})"


def source(comparison: Comparison) -> str:
    """The table and drive compared with (``paper_4k_randread/optane_p5800x``); for a user's
    table, the file as given, the drive and the bs (``bs8k.json, optane_p5800x, bs 8192``)."""
    values, against = comparison.values, comparison.against
    if against is None:
        return values.table + (f"/{values.device}" if values.device else "")
    return f"{against.file}, {values.device or 'its one drive'}, bs {show_size(against.bs)}"


def print_comparison(console: Console, comparison: Comparison) -> None:
    """The title, the table, the legend and the summary line. The table is printed whole even
    where the terminal is narrower (the terminal wraps it): squeezed to fit, rich would cut
    its numbers to "1…", and they are the point."""
    console.print(title(comparison), soft_wrap=True)
    table = cell_table(comparison)
    wide = Measurement.get(console, console.options.update_width(1000), table).maximum
    narrow = console.width
    console.width = max(narrow, wide)
    try:
        console.print(table)
    finally:
        console.width = narrow
    console.print(LEGEND, soft_wrap=True)
    gaps = sorted({c.beyond for c in comparison.cells if c.beyond})
    if gaps:
        console.print(f"{BEYOND} here: {'; '.join(gaps)}: the model's guess", soft_wrap=True)
    console.print(summary_line(comparison.summary), soft_wrap=True)


def short_role(role: str) -> str:
    """A role's first word ("prediction: only these two ... are given" -> "prediction")."""
    return role.split(":", 1)[0].strip() or role


def summary_line(summary: Summary) -> str:
    """One line: cells compared, |error| fitted and predicted (IOPS %, CPU points), within."""
    return (
        f"{summary.profile}: {summary.cells} cells compared; |IOPS error| "
        f"{_stats(summary.iops_fitted, summary.iops_predicted, '%')}; |CPU error| "
        f"{_stats(summary.cpu_fitted, summary.cpu_predicted, ' pts')}; within "
        f"{IOPS_TOLERANCE_PCT:g}% IOPS and {CPU_TOLERANCE_PTS:g} pts CPU: "
        f"{summary.within}/{summary.cells} (IOPS {summary.within_iops}/"
        f"{summary.iops_fitted.cells + summary.iops_predicted.cells}, CPU "
        f"{summary.within_cpu}/{summary.cpu_fitted.cells + summary.cpu_predicted.cells})"
    )


def _stats(fitted: ErrorStats, predicted: ErrorStats, unit: str) -> str:
    if not fitted.cells and not predicted.cells:
        return "not published"
    return f"fitted {_one(fitted, unit)}, predicted {_one(predicted, unit)}"


def _one(stats: ErrorStats, unit: str) -> str:
    if stats.mean_abs is None or stats.worst_abs is None:
        return "none"
    mean, worst = f"{stats.mean_abs:.1f}{unit}", f"{stats.worst_abs:.1f}{unit}"
    return f"mean {mean} worst {worst} ({stats.cells} cell{'s' if stats.cells != 1 else ''})"


# -- the files ---------------------------------------------------------------------------------


def comparison_record(comparison: Comparison) -> dict[str, Any]:
    """validate.json's part for one profile that the comparison makes: the published section,
    the user's table where it is one (``against``: file and bs), the drive's role, the summary
    and the cells."""
    against = comparison.against
    return {
        "name": comparison.profile,
        "published": comparison.published.record(),
        **({} if against is None else {"against": asdict(against)}),
        "role": comparison.values.role,
        "summary": asdict(comparison.summary),
        "cells": [asdict(c) for c in comparison.cells],
    }


def document(config: dict[str, Any], profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """validate.json: the schema, the command's config and one entry per profile."""
    return {"schema": SCHEMA, "config": config, "profiles": profiles}


CSV_COLUMNS = tuple(f.name for f in fields(Cell))
#: the columns added when a comparison is with a user's table: its file and bs
AGAINST_COLUMNS = ("against_file", "against_bs")


def write_csv(comparisons: list[Comparison], path: Path) -> None:
    """One row per cell of every profile; an empty field where the table gives no value.
    With a user's table among them, two more columns say which (empty on the rows of the
    profiles' own tables)."""
    more = AGAINST_COLUMNS if any(c.against for c in comparisons) else ()
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS + more)
        for comparison in comparisons:
            against = comparison.against
            extra = [against.file, against.bs] if against else ["", ""]
            for cell in comparison.cells:
                row = asdict(cell)
                values = ["" if row[c] is None else row[c] for c in CSV_COLUMNS]
                out.writerow(values + extra[: len(more)])
