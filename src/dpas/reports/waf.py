"""``dpas waf``: the write amplification a drive's indirection unit (IU) adds, as a record
(JSON schema dpas.waf/1), rich tables and a CSV.

Two reports: a trace's (its writes tallied per IU by dpas.waf.amplification: counts, bytes,
ends not on an IU boundary, and each I/O size's share of the media bytes) and the worst case
(each length placed a sector short of an IU boundary). Counts and bytes stay exact integers;
WAF_IU is shown rounded to 3 decimals from the exact fraction, and the record carries the
integers it comes from.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from rich.table import Table

from dpas.sizes import show_size
from dpas.waf.amplification import (
    SECTOR,
    Amplification,
    SizeShare,
    amplification,
    by_size,
    worst_media,
)
from dpas.waf.writes import Writes, lines_text

SCHEMA = "dpas.waf/1"
#: --worst's lengths: every multiple of a sector up to 1 MiB (2048 of them, for the figure)
WORST_LENGTHS = tuple(range(SECTOR, (1 << 20) + 1, SECTOR))
#: --worst's table: the powers of two, and some sizes between them that real I/O has
WORST_TABLE = tuple(
    sorted(
        {SECTOR << k for k in range(12)} | {1536, 3 << 10, 6 << 10, 12 << 10, 20 << 10, 48 << 10}
    )
)
#: the most I/O sizes a trace's table lists (the largest media shares; JSON and CSV hold all)
MAX_SIZE_ROWS = 30


def ratio_text(value: Fraction) -> str:
    """``value`` (not negative) to 3 decimals, rounded half up from the exact fraction, as by
    hand: 1.0625 is 1.063 (a float's format rounds half to even, and not from the fraction)."""
    thousandths = math.floor(value * 1000 + Fraction(1, 2))
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"


def ratio_json(value: Fraction) -> float:
    """``value`` as a JSON number of 3 decimals (the record also carries its integers)."""
    return float(ratio_text(value))


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as "12.5%" ("0.0%" of nothing)."""
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


@dataclass(frozen=True, slots=True)
class IuTally:
    """One IU against the trace: the totals, and per I/O size."""

    total: Amplification
    sizes: list[SizeShare]


@dataclass(frozen=True, slots=True)
class TraceReport:
    """A trace's writes against each IU given."""

    trace: Path
    format: str
    #: blkparse's action counted (D, Q or C); None for fio's iolog and CSV
    event: str | None
    skipped: int
    ius: list[IuTally]

    @classmethod
    def of(cls, trace: Path, writes: Writes, event: str | None, ius: list[int]) -> TraceReport:
        """Tally ``writes`` for every IU (dpas.waf.amplification's arithmetic)."""
        tallies = [
            IuTally(
                amplification(writes.offsets, writes.lengths, iu),
                by_size(writes.offsets, writes.lengths, iu),
            )
            for iu in ius
        ]
        return cls(trace, writes.format, event, writes.skipped, tallies)

    @property
    def writes(self) -> int:
        return self.ius[0].total.writes

    @property
    def logical(self) -> int:
        return self.ius[0].total.logical

    def record(self) -> dict[str, Any]:
        """The JSON document: schema dpas.waf/1, kind "trace"."""
        return {
            "schema": SCHEMA,
            "kind": "trace",
            "trace": str(self.trace),
            "format": self.format,
            "event": self.event,
            "skipped_lines": self.skipped,
            "writes": self.writes,
            "logical_bytes": self.logical,
            "ius": [_iu_record(t) for t in self.ius],
        }


def _iu_record(tally: IuTally) -> dict[str, Any]:
    total = tally.total
    return {
        "iu": total.iu,
        "iu_text": show_size(total.iu),
        "writes": total.writes,
        "logical_bytes": total.logical,
        "media_bytes": total.media,
        "waf": ratio_json(total.waf),
        "unaligned": {
            "start_only": total.start_only,
            "end_only": total.end_only,
            "both": total.both,
            "aligned": total.aligned,
        },
        "sizes": [
            {
                "length": s.length,
                "writes": s.writes,
                "logical_bytes": s.logical,
                "media_bytes": s.media,
                "waf": ratio_json(s.waf),
            }
            for s in tally.sizes
        ],
    }


def trace_header(report: TraceReport) -> str:
    """What was read: the file, its format and action, the writes and bytes, lines skipped."""
    what = {"fio": "fio iolog", "csv": "CSV"}.get(report.format, f"blkparse, {report.event} events")
    skipped = f"; {lines_text(report.skipped)} skipped" if report.skipped else ""
    return (
        f"{report.trace} ({what}): {report.writes} write{'' if report.writes == 1 else 's'}, "
        f"{show_size(report.logical)} bytes written{skipped}"
    )


def iu_line(tally: IuTally) -> str:
    """One IU's totals (two lines): WAF_IU and its bytes, then the writes whose ends miss an
    IU boundary."""
    t = tally.total

    def share(n: int) -> str:
        return f"{percent(n, t.writes)} ({n})"

    return (
        f"IU {show_size(t.iu)}: WAF_IU {ratio_text(t.waf)}, {show_size(t.media)} media bytes "
        f"for {show_size(t.logical)} written\n  writes unaligned: start only "
        f"{share(t.start_only)}, end only {share(t.end_only)}, both {share(t.both)}; "
        f"aligned {share(t.aligned)}"
    )


def size_table(tally: IuTally) -> Table:
    """The IU's I/O sizes (ascending): their writes, bytes, WAF_IU and share of the media
    bytes; beyond MAX_SIZE_ROWS sizes, those with the largest shares and a row for the rest."""
    t = tally.total
    shown = sorted(tally.sizes, key=lambda s: (-s.media, s.length))[:MAX_SIZE_ROWS]
    table = Table(title=f"IU {show_size(t.iu)} by I/O size", title_justify="left")
    for name in ("size", "writes", "written", "media", "WAF_IU", "share of media"):
        table.add_column(name, justify="right")
    for s in sorted(shown, key=lambda s: s.length):
        table.add_row(
            show_size(s.length), str(s.writes), show_size(s.logical), show_size(s.media),
            ratio_text(s.waf), percent(s.media, t.media),
        )  # fmt: skip
    listed = {s.length for s in shown}
    rest = [s for s in tally.sizes if s.length not in listed]
    if rest:
        writes, media = sum(s.writes for s in rest), sum(s.media for s in rest)
        logical = sum(s.logical for s in rest)
        table.add_row(
            f"{len(rest)} more", str(writes), show_size(logical), show_size(media),
            ratio_text(Fraction(media, logical)), percent(media, t.media),
        )  # fmt: skip
    return table


def write_trace_csv(report: TraceReport, path: Path) -> None:
    """One row per IU and I/O size (the IU's rows sum to its totals)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(
            ["iu", "length", "writes", "logical_bytes", "media_bytes", "waf", "media_share"]
        )
        for tally in report.ius:
            for s in tally.sizes:
                out.writerow(
                    [tally.total.iu, s.length, s.writes, s.logical, s.media,
                     ratio_text(s.waf),
                     f"{s.media / tally.total.media:.6f}"]
                )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorstReport:
    """The worst case: each length in WORST_LENGTHS placed a sector short of an IU boundary."""

    ius: list[int]

    def media(self, iu: int, lengths: tuple[int, ...] = WORST_LENGTHS) -> list[int]:
        """The worst media bytes of each length for ``iu`` (dpas.waf.amplification)."""
        return [worst_media(n, iu) for n in lengths]

    def record(self) -> dict[str, Any]:
        """The JSON document: schema dpas.waf/1, kind "worst"."""
        return {
            "schema": SCHEMA,
            "kind": "worst",
            "align": SECTOR,
            "lengths": list(WORST_LENGTHS),
            "ius": [
                {
                    "iu": iu,
                    "iu_text": show_size(iu),
                    "media_bytes": media,
                    "waf": [
                        ratio_json(Fraction(m, n))
                        for m, n in zip(media, WORST_LENGTHS, strict=True)
                    ],
                }
                for iu in self.ius
                for media in [self.media(iu)]
            ],
        }


def worst_header() -> str:
    """What the worst case is, and its formula (two lines)."""
    return (
        f"worst case of one write of L bytes (starting {SECTOR} bytes short of an IU boundary):\n"
        f"  media = IU x ceil((L + IU - {SECTOR}) / IU), WAF_IU = media / L"
    )


def worst_table(report: WorstReport) -> Table:
    """WORST_TABLE's lengths against every IU: the worst WAF_IU of one such write."""
    table = Table()
    table.add_column("length", justify="right")
    for iu in report.ius:
        table.add_column(f"IU {show_size(iu)}", justify="right")
    columns = [report.media(iu, WORST_TABLE) for iu in report.ius]
    for row, n in enumerate(WORST_TABLE):
        table.add_row(show_size(n), *(ratio_text(Fraction(c[row], n)) for c in columns))
    return table


def write_worst_csv(report: WorstReport, path: Path) -> None:
    """One row per IU and length: the worst media bytes and WAF_IU."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["iu", "length", "worst_media_bytes", "worst_waf"])
        for iu in report.ius:
            for n, m in zip(WORST_LENGTHS, report.media(iu), strict=True):
                out.writerow([iu, n, m, ratio_text(Fraction(m, n))])


def write_csv(report: TraceReport | WorstReport, path: Path) -> None:
    """The report's CSV (docs/waf.md: its columns)."""
    if isinstance(report, TraceReport):
        write_trace_csv(report, path)
    else:
        write_worst_csv(report, path)
