"""``dpas compare A B``: two results.json, cell by cell, with their spread and a verdict.

A cell is one mode (and who completed its I/Os, where a sweep mixes fio and the engine), job
count, rw and workload; its values are its repeats' records. Each cell both files hold gets
A's and B's mean with its 95% interval (dpas.reports.stats), B's ratio to A as "1.12x faster"
(for IOPS higher is better, for latency and CPU lower), and a verdict by Welch's t-test at 95%:
better, worse, or the same (not significant, or a change below ``min_change_pct``). With
fewer than three repeats on a side it says "cannot tell" (pyperf judges a single value a side;
a test of two values has too little to go on). Reports never run experiments: this reads
files.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from dpas.errors import DpasError
from dpas.reports.bench import METRICS, label
from dpas.reports.stats import MIN_TO_TELL, Summary, Welch
from dpas.results import ENGINE, TABLE_COLUMNS

SCHEMA = "dpas.compare/1"
#: the results.json this reads: any dpas.bench/N (every version has the fields read here)
RESULTS_SCHEMA = "dpas.bench/"
#: the groups, in the order they are printed
BETTER, WORSE, SAME, CANNOT_TELL = "better", "worse", "same", "cannot tell"
VERDICTS = (BETTER, WORSE, SAME, CANNOT_TELL)
#: how a ratio above 1 and one below read, per metric
WORDS = {"iops": ("faster", "slower"), "lat": ("faster", "slower"), "cpu": ("less CPU", "more CPU")}

#: (mode label, jobs, rw, workload) of a cell
Key = tuple[str, int, str, str]


class CompareError(DpasError):
    """A file that is not there, not JSON, or not dpas results; or two with no cell in common."""


@dataclass(frozen=True, slots=True)
class Results:
    """One side: the results.json read, and where it was."""

    path: Path
    document: dict[str, Any]

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.document["records"]  # type: ignore[no-any-return]

    @property
    def config(self) -> dict[str, Any]:
        """results.json's config ({} where a hand-made file has none)."""
        config = self.document.get("config")
        return config if isinstance(config, dict) else {}

    def mixed(self) -> bool:
        """Whether the sweep mixes fio and dpas's engine (dpas vm bench --engine fio,dpas)."""
        return len({r.get("engine") == ENGINE for r in self.records}) > 1


def load(given: Path) -> Results:
    """``given``, a results.json or an --out folder holding one, read and checked."""
    path = given / "results.json" if given.is_dir() else given
    accepted = "expected dpas bench's results.json or the --out folder holding one"
    if not given.exists():
        raise CompareError(f"{given}: no such file or folder; {accepted}")
    if not path.is_file():
        raise CompareError(f"{given}: no results.json in this folder; {accepted}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CompareError(f"{path}: unreadable ({err.strerror or err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CompareError(f"{path}: not JSON; {accepted}") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if not (isinstance(schema, str) and schema.startswith(RESULTS_SCHEMA)) or not isinstance(
        document.get("records"), list
    ):
        raise CompareError(f"{path}: not dpas results (no {RESULTS_SCHEMA}N schema); {accepted}")
    for i, record in enumerate(document["records"]):
        if not isinstance(record, dict):
            raise CompareError(f"{path}: record {i} is not a dpas run record")
    return Results(path, document)


def cell_values(side: Results, field: str, mixed: bool) -> dict[Key, list[float]]:
    """Each cell's values of ``field``, one per repeat, cells in the file's order."""
    values: dict[Key, list[float]] = defaultdict(list)
    for i, r in enumerate(side.records):
        try:
            key = (label(r, mixed), int(r["jobs"]), str(r["rw"]), str(r.get("workload") or ""))
            value = r[field]
        except (TypeError, KeyError, ValueError):
            raise CompareError(f"{side.path}: record {i} is not a dpas run record") from None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise CompareError(f"{side.path}: record {i} has no number for {field}")
        values[key].append(float(value))
    return values


def cell_name(key: Key) -> str:
    """ "DPAS x4 R", and the workload where there is one."""
    mode, jobs, rw, workload = key
    return f"{mode} x{jobs} {rw}" + (f" {workload}" if workload else "")


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell both sides hold: their summaries, B's ratio to A read so that above 1 is
    better (None where a mean is 0), its interval's half-width (None without intervals),
    the test (None when it cannot tell), the verdict and why."""

    key: Key
    a: Summary
    b: Summary
    ratio: float | None
    ratio_half_width: float | None
    welch: Welch | None
    verdict: str
    why: str


def ratio_of(a: Summary, b: Summary, higher_is_better: bool) -> tuple[float | None, float | None]:
    """B's ratio to A, above 1 where B is better, and its 95% half-width by the delta method:
    ratio x sqrt((hwA/meanA)^2 + (hwB/meanB)^2), a first-order approximation. None where a
    mean is not above 0 (no I/O done) or the ratio is not a finite number."""
    if a.mean <= 0 or b.mean <= 0:
        return None, None
    ratio = b.mean / a.mean if higher_is_better else a.mean / b.mean
    if not math.isfinite(ratio) or ratio == 0:  # the means of a hand-made file, 1e300 apart
        return None, None
    if a.half_width is None or b.half_width is None:
        return ratio, None
    width = ratio * math.hypot(a.half_width / a.mean, b.half_width / b.mean)
    return ratio, width if math.isfinite(width) else None


def judge(key: Key, a: Summary, b: Summary, higher_is_better: bool, min_change_pct: float) -> Cell:
    """The cell ``key``: its ratio and verdict."""
    ratio, half_width = ratio_of(a, b, higher_is_better)
    if a.n < MIN_TO_TELL or b.n < MIN_TO_TELL:
        return Cell(key, a, b, ratio, half_width, None, CANNOT_TELL, f"n={a.n}/{b.n}")
    if ratio is None:
        return Cell(key, a, b, None, None, None, CANNOT_TELL, "no ratio: a mean of 0 or less")
    welch = Welch.of(a, b)
    if not welch.significant:
        return Cell(key, a, b, ratio, half_width, welch, SAME, "not significant")
    if abs(b.mean - a.mean) / a.mean * 100 < min_change_pct:
        return Cell(key, a, b, ratio, half_width, welch, SAME, f"below {min_change_pct:g}%")
    return Cell(key, a, b, ratio, half_width, welch, BETTER if ratio > 1 else WORSE, "significant")


def change(ratio: float | None, metric: str) -> str:
    """ "1.12x faster", "1.05x slower" (for CPU: less, more CPU); "" without a ratio."""
    if ratio is None:
        return ""
    up, down = WORDS[metric]
    if ratio == 1:
        return "1.00x (equal)"
    return f"{ratio:.2f}x {up}" if ratio > 1 else f"{1 / ratio:.2f}x {down}"


@dataclass(frozen=True, slots=True)
class Comparison:
    """A against B on one metric: every shared cell judged, and their ratios' geometric
    mean."""

    a: Results
    b: Results
    metric: str
    min_change_pct: float
    cells: list[Cell]

    @property
    def geometric_mean(self) -> float | None:
        ratios = [c.ratio for c in self.cells if c.ratio is not None]
        return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None

    def grouped(self) -> dict[str, list[Cell]]:
        """verdict -> its cells, in VERDICTS' order (every verdict present, maybe empty)."""
        groups: dict[str, list[Cell]] = {v: [] for v in VERDICTS}
        for cell in self.cells:
            groups[cell.verdict].append(cell)
        return groups

    def config_differs(self) -> list[str]:
        """The names of results.json's config entries that differ between the two sides."""
        ca, cb = self.a.config, self.b.config
        return sorted(k for k in ca.keys() | cb.keys() if ca.get(k) != cb.get(k))

    def record(self) -> dict[str, Any]:
        """The JSON document of ``dpas compare --json``."""
        field, higher = METRICS[self.metric]
        return {
            "schema": SCHEMA,
            "a": str(self.a.path),
            "b": str(self.b.path),
            "metric": self.metric,
            "field": field,
            "higher_is_better": higher,
            "test": "welch-t-95",
            "min_change_pct": self.min_change_pct,
            "config_differs": self.config_differs(),
            "cells": [_cell_record(c, self.metric) for c in self.cells],
            "counts": {v: len(cs) for v, cs in self.grouped().items()},
            "geometric_mean": self.geometric_mean,
        }


def _cell_record(cell: Cell, metric: str) -> dict[str, Any]:
    mode, jobs, rw, workload = cell.key
    welch = cell.welch
    return {
        "mode": mode,
        "jobs": jobs,
        "rw": rw,
        "workload": workload or None,
        "a": cell.a.record(),
        "b": cell.b.record(),
        "ratio": cell.ratio,
        "ratio_half_width": cell.ratio_half_width,
        "change": change(cell.ratio, metric),
        "verdict": cell.verdict,
        "why": cell.why,
        "significant": None if welch is None else welch.significant,
        # t is infinite where neither side varies: null then
        "t": None if welch is None or not math.isfinite(welch.t) else welch.t,
        "df": None if welch is None else welch.df,
    }


def compare(a: Results, b: Results, metric: str, min_change_pct: float = 0.0) -> Comparison:
    """Every cell both hold, in A's order, judged on ``metric`` (a METRICS name)."""
    field, higher = METRICS[metric]
    mixed = a.mixed() or b.mixed()
    values_a, values_b = cell_values(a, field, mixed), cell_values(b, field, mixed)
    shared = [key for key in values_a if key in values_b]
    if not shared:
        raise CompareError(
            f"{a.path} and {b.path} share no cell (mode, jobs, rw, workload): nothing to compare"
        )
    cells = [
        judge(key, Summary.of(values_a[key]), Summary.of(values_b[key]), higher, min_change_pct)
        for key in shared
    ]
    return Comparison(a, b, metric, min_change_pct, cells)


def verdict_text(cell: Cell) -> str:
    """What the test said, short enough for a terminal's row: "significant", "not
    significant", "below 5%", "cannot tell (n=2/3)" (t and df: in the JSON)."""
    return f"{CANNOT_TELL} ({cell.why})" if cell.welch is None else cell.why


def header(comparison: Comparison) -> list[str]:
    """The lines above the tables: the two files, the metric and the rules applied."""
    field, higher = METRICS[comparison.metric]
    heading = next(h for name, h, _ in TABLE_COLUMNS if name == field)
    lines = [
        f"{side}: {r.path} ({r.document.get('backend', '?')}, "
        f"{r.config.get('repeats', '?')} repeats)"
        for side, r in (("A", comparison.a), ("B", comparison.b))
    ]
    lines.append(
        f"{heading}, {'higher' if higher else 'lower'} is better: mean ±95% CI (Student's t), "
        f"B against A by Welch's t-test at 95%"
        + (f", a change below {comparison.min_change_pct:g}% counts as the same"
           if comparison.min_change_pct else "")
    )  # fmt: skip
    if differs := comparison.config_differs():
        lines.append(f"their configs differ in: {', '.join(differs)}")
    return lines


def tables(comparison: Comparison) -> list[Table]:
    """One table per verdict that has cells: the cell, A and B, the change and the test."""
    field, _ = METRICS[comparison.metric]
    fmt = next(f for name, _, f in TABLE_COLUMNS if name == field)
    out = []
    for verdict, cells in comparison.grouped().items():
        if not cells:
            continue
        table = Table(title=f"{verdict} ({len(cells)})", title_justify="left")
        for name in ("cell", "A", "B", "change", "test"):
            table.add_column(name, justify="left" if name in ("cell", "test") else "right")
        for c in cells:
            table.add_row(
                cell_name(c.key), c.a.shown(fmt), c.b.shown(fmt),
                change(c.ratio, comparison.metric), verdict_text(c),
            )  # fmt: skip
        out.append(table)
    return out


def footer(comparison: Comparison) -> str:
    """The geometric mean of the ratios, over the cells that have one."""
    ratios = sum(c.ratio is not None for c in comparison.cells)
    mean = change(comparison.geometric_mean, comparison.metric) or "none (every mean is 0)"
    return f"geometric mean of {ratios} cells' ratios: {mean}"
