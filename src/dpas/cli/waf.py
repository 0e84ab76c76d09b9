"""``dpas waf TRACE --iu 4k,16k``: the write amplification a drive's indirection unit adds to a
real trace's writes; ``dpas waf --worst``: the worst case by I/O length."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dpas.cli.app import InputError, cli
from dpas.cli.options import FILE_OUT, check_figure_name, writing
from dpas.errors import LimitError
from dpas.reports.waf import (
    TraceReport,
    WorstReport,
    iu_line,
    size_table,
    trace_header,
    worst_header,
    worst_table,
    write_csv,
)
from dpas.sizes import checked_size
from dpas.waf.amplification import MAX_IU, SECTOR, check_iu
from dpas.waf.writes import EVENTS, read_writes

DEFAULT_IUS = "4k,16k,64k"


def _event(value: str) -> str:
    """--event, any case, as blkparse prints the action (upper case)."""
    if value.upper() not in EVENTS:
        raise click.BadParameter(f"{value}: expected D, Q or C (blkparse's action letters)")
    return value.upper()


def parse_ius(text: str) -> list[int]:
    """--iu's comma list as fio writes sizes (4k,16K,64k), each 512 B times a power of two;
    ascending, each once."""
    ius = set()
    for word in text.split(","):
        if not word.strip():
            raise LimitError(f"--iu {text}: expected sizes separated by commas, as in 4k,16k")
        ius.add(check_iu(checked_size("--iu", word, SECTOR, MAX_IU)))
    return sorted(ius)


@cli.command("waf")
@click.argument("trace", type=click.Path(path_type=Path), required=False, metavar="[TRACE]")
@click.option(
    "--iu",
    "iu_text",
    default=DEFAULT_IUS,
    show_default=True,
    metavar="SIZES",
    help="Indirection units to tally, comma-separated as fio writes sizes: 512 B times a "
    "power of two.",
)
@click.option(
    "--event",
    callback=lambda ctx, param, value: _event(value),
    metavar="D|Q|C",
    default="D",
    show_default=True,
    help="blkparse's action counted: D (dispatched to the driver), Q (queued) or C (completed).",
)
@click.option(
    "--skip-bad", is_flag=True, help="Skip malformed lines (counted) instead of stopping there."
)
@click.option(
    "--worst", is_flag=True, help="No trace: the worst case of one write, by length (512 B-1m)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of tables.")
@click.option(
    "--csv", "csv_path", type=FILE_OUT, default=None, help="Write one row per IU and I/O size."
)
@click.option(
    "--plot", type=FILE_OUT, default=None, help="Draw WAF_IU by I/O size to this .png or .svg."
)
def waf_command(
    trace: Path | None,
    iu_text: str,
    event: str,
    skip_bad: bool,
    worst: bool,
    as_json: bool,
    csv_path: Path | None,
    plot: Path | None,
) -> None:
    """WAF_IU of TRACE's writes for each --iu: the media bytes a drive that maps its blocks in
    IU-sized units writes (whole units: a write not on IU boundaries costs a read-modify-write
    of the units at its ends) over the bytes written.

    TRACE is fio's write_iolog, blkparse's text or a CSV of offset,length (told by its first
    line). Per IU: writes, bytes, WAF_IU, the writes unaligned at the start, the end or both,
    and each I/O size's share of the media bytes. See docs/waf.md.
    """
    ius = parse_ius(iu_text)
    check_figure_name("--plot", plot)
    console = Console(stderr=as_json)
    if worst:
        if trace is not None:
            raise InputError(
                f"--worst takes no TRACE (it is the worst case of any trace): drop {trace} "
                "or --worst"
            )
        if event != "D" or skip_bad:
            raise InputError("--worst reads no trace: --event and --skip-bad do not apply")
        bound = WorstReport(ius)
        if not as_json:
            console.print(worst_header(), soft_wrap=True)
            console.print(worst_table(bound))
        _outputs(console, bound.record() if as_json else None, csv_path, plot, bound)
        return
    if trace is None:
        raise InputError(
            "expected a TRACE (fio's write_iolog, blkparse text or a CSV of offset,length), "
            "or --worst"
        )
    writes = read_writes(trace, event=event, skip_bad=skip_bad)
    report = TraceReport.of(trace, writes, event if writes.format == "blkparse" else None, ius)
    if not as_json:
        console.print(trace_header(report), soft_wrap=True)
        for tally in report.ius:
            console.print(iu_line(tally), soft_wrap=True)
            console.print(size_table(tally))
    _outputs(console, report.record() if as_json else None, csv_path, plot, report)


def _outputs(
    console: Console,
    record: dict[str, Any] | None,
    csv_path: Path | None,
    plot: Path | None,
    report: TraceReport | WorstReport,
) -> None:
    """The JSON document (printed when given), then the CSV and the figure where asked."""
    if record is not None:
        click.echo(json.dumps(record, indent=1, allow_nan=False))
    saves: list[tuple[str, Path | None, Callable[[TraceReport | WorstReport, Path], object]]]
    saves = [("--csv", csv_path, write_csv), ("--plot", plot, _draw)]
    for option, path, save in saves:
        if path is None:
            continue
        with writing(option, path):
            save(report, path)
        console.print(f"wrote {path}")


def _draw(report: TraceReport | WorstReport, path: Path) -> object:
    from dpas.reports.waf_figure import draw  # matplotlib is slow to import

    return draw(report, path)
