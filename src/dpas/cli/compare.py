"""``dpas compare A B``: two dpas bench results, cell by cell, with their spread and a verdict."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from dpas.cli.app import cli
from dpas.cli.options import FILE_OUT, Number, check_figure_name, writing
from dpas.reports.bench import METRICS
from dpas.reports.compare import compare, footer, header, load, tables

#: a change at most this many percent: --min-change's range
MAX_MIN_CHANGE = 1000


@cli.command("compare")
@click.argument("a", type=click.Path(path_type=Path), metavar="A")
@click.argument("b", type=click.Path(path_type=Path), metavar="B")
@click.option(
    "--metric",
    type=click.Choice(list(METRICS)),
    default="iops",
    show_default=True,
    help="iops (higher is better), lat (mean latency) or cpu (cpu%; both lower is better).",
)
@click.option(
    "--min-change",
    "min_change",
    type=Number(0, MAX_MIN_CHANGE),
    default=0,
    show_default=True,
    metavar="PCT",
    help="A significant difference smaller than this many percent of A counts as the same.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of tables.")
@click.option(
    "--figure",
    type=FILE_OUT,
    default=None,
    help="Draw each cell's ratio with its interval to this .png or .svg file.",
)
def compare_command(
    a: Path, b: Path, metric: str, min_change: float, as_json: bool, figure: Path | None
) -> None:
    """A and B (results.json files, or the --out folders holding them), cell by cell.

    For each mode, jobs, rw and workload both hold: A's and B's mean with its 95% interval,
    B's ratio to A ("1.12x faster"), and Welch's t-test at 95%: better, worse or the same.
    Fewer than 3 repeats a side: "cannot tell". See docs/compare.md.
    """
    check_figure_name("--figure", figure)
    comparison = compare(load(a), load(b), metric, float(min_change))
    console = Console(stderr=as_json)
    if as_json:
        click.echo(json.dumps(comparison.record(), indent=1, allow_nan=False))
    else:
        console.print("\n".join(header(comparison)), soft_wrap=True)
        for table in tables(comparison):
            console.print(table)
        console.print(footer(comparison))
    if figure is not None:
        from dpas.reports.compare_figure import plot_ratios  # matplotlib is slow to import

        with writing("--figure", figure):
            plot_ratios(comparison, figure)
        console.print(f"wrote {figure}")
