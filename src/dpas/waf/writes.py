"""The host's writes, read from a trace: fio's write_iolog, blkparse's default text, or a CSV.

Each reader returns every write's offset and length in bytes, in the trace's order, and how
many malformed lines it skipped (``skip_bad``; without it the first one is an error naming the
file and the line). A line that is the format's own but no write (a read, a flush, a plug, a
file being opened) is not malformed: it is simply not counted.

fio's iolog (fio's iolog.c, ``read_iolog`` and ``init_iolog_read``; fio's HOWTO, "I/O replay"
and "Trace file format"): the first line names the version, "fio version 2 iolog" or "fio
version 3 iolog" (fio compares that prefix; version 1 it no longer reads). A v2 line is
``filename action [offset length]``, a v3 line the same after a timestamp in µs since the
log started: ``time filename action [offset length]``. Without offset and length the action
is one on a file (add, open, close); with them an I/O: read, write, sync, datasync, trim, and
in v2 wait (whose "offset" is a delay; v3 ignores a wait). fio's own writer (``log_io_u``)
prints every I/O with both numbers, so its syncs carry them too, and it names a direction by
``io_ddir_name``, which has sync_file_range as well. Offsets and lengths are bytes.

blkparse's default text (blktrace's blkparse_fmt.c, ``process_default``): every event starts
``maj,min cpu sequence seconds.nanoseconds pid action RWBS`` and an I/O's then carries
``sector + sectors`` (512-byte sectors) and, for an issue, insert or queue, the process in
brackets; ``-t`` adds the elapsed time in parentheses before it. RWBS (``fill_rwbs``) holds W
for a write, D for a discard, R a read, N no data, and F for a flush first or FUA after, then
A, S, M. Actions (blkparse.c, ``dump_trace_fs``/``dump_trace_pc``) are Q, G, S, R, D, C, I, M,
F, P, U, UT, X, B and A; a message is ``m`` with RWBS N (``handle_notify``, which may put a
cgroup "ino,gen" before it), and SCSI pass-through events print bytes, not a sector range.
After the events blkparse prints its summaries ("CPU0 (8,0):", "Total (8,0):", or with -s one
per process first, as "fio (1234)"), then "Throughput (R/W): ...": the first of them ends the
events. Reading a run's per-CPU files it first prints "Input file NAME added".

CSV: ``offset,length`` per line, each in bytes or as fio writes a size (4k, 1m, 0x1000), with
an optional header line and ``#`` comments; every row is a write.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpas.errors import DpasError
from dpas.sizes import parse_size
from dpas.waf.amplification import SECTOR

#: an offset + length past this (4 EiB) is no drive's, and keeps every sum inside int64
MAX_END = 1 << 62
FORMATS = ("fio", "blkparse", "csv")
#: the blkparse actions dpas waf counts: queued (Q), dispatched to the driver (D), completed (C)
EVENTS = ("D", "Q", "C")
FIO_HEADERS = {"fio version 2 iolog": 2, "fio version 3 iolog": 3}
#: fio's actions with an offset and a length (``read_iolog``; ``io_ddir_name`` for the last)
FIO_IO_ACTIONS = frozenset({"read", "write", "sync", "datasync", "trim", "wait", "sync_file_range"})
FIO_FILE_ACTIONS = frozenset({"add", "open", "close"})
#: the first word of blktrace's binary files (BLK_IO_TRACE_MAGIC, the low byte the version)
BLKTRACE_MAGIC = 0x65617400

_DIGITS = re.compile(r"[0-9]{1,20}")
# "  8,0    3        1     0.000000000  697  D  WS 2048 + 8 [kworker]"; a message may have
# a cgroup "ino,gen" (hex) before its action
_BLK_EVENT = re.compile(
    r"\s*\d+,\d+\s+\d+\s+\d+\s+\d+\.\d+\s+\d+\s+(?:[0-9a-f]+,[0-9a-f]+\s+)?"
    r"(?P<action>UT|[QGSRDCIMFPUXBAm])\s+(?P<rwbs>[A-Z]{1,8})(?:\s+(?P<rest>.*))?",
    re.ASCII,
)
_BLK_RANGE = re.compile(r"(?P<sector>[0-9]{1,20}) \+ (?P<sectors>[0-9]{1,10})(?:\s|$)", re.ASCII)
# the summaries that end the events: per CPU and in total, or with -s per process first
_BLK_SUMMARY = re.compile(
    r"(?:CPU\d+|Total) \(.*\):|.+ \(\d+(?:, \.\.\.)?\)|Throughput \(R/W\): .*"
)
_BLK_INPUT = re.compile(r"Input file \S.* added")


class WritesError(DpasError, ValueError):
    """A trace that cannot be read; the message names the file and, where one is, the line."""


class NoWritesError(WritesError):
    """A trace read whole that holds no write (a caller that counts several may go on)."""


@dataclass(frozen=True)
class Writes:
    """The writes of one trace, in its order: offsets and lengths in bytes (int64)."""

    offsets: np.ndarray
    lengths: np.ndarray
    #: malformed lines skipped (``skip_bad``)
    skipped: int
    #: "fio", "blkparse" or "csv"
    format: str

    def __len__(self) -> int:
        return int(self.offsets.size)


class _Bad(Exception):
    """One malformed line: why (the reader adds the file, the line number and the text)."""


class _Collector:
    """The writes found so far, and the malformed lines skipped or refused."""

    def __init__(self, path: Path, skip_bad: bool) -> None:
        self.path, self.skip_bad = path, skip_bad
        self.offsets, self.lengths = array("q"), array("q")
        self.skipped = 0

    def add(self, offset: int, length: int) -> None:
        """One write, checked: a whole, non-negative offset, a length of 1 byte or more, and
        an end inside MAX_END."""
        if length <= 0:
            raise _Bad("a write of no bytes")
        if offset + length > MAX_END:
            raise _Bad("offset + length beyond 4 EiB (2^62 bytes)")
        self.offsets.append(offset)
        self.lengths.append(length)

    def bad(self, lineno: int, line: str, why: str) -> None:
        """Skip the line (counted) under ``skip_bad``, else refuse it in one line."""
        if self.skip_bad:
            self.skipped += 1
            return
        shown = line.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise WritesError(
            f"{self.path} line {lineno}: {why}: {shown!r} (--skip-bad skips such lines)"
        )

    def writes(self, form: str, none: str) -> Writes:
        """The writes as arrays; a trace without one is an error (``none`` says what was
        looked for)."""
        if not self.offsets:
            skipped = f" ({lines_text(self.skipped)} skipped)" if self.skipped else ""
            raise NoWritesError(f"{self.path}: no writes{skipped}: {none}")
        return Writes(
            np.frombuffer(self.offsets, dtype=np.int64).copy(),
            np.frombuffer(self.lengths, dtype=np.int64).copy(),
            self.skipped,
            form,
        )


def lines_text(n: int) -> str:
    """ "1 malformed line", "3 malformed lines"."""
    return f"{n} malformed line{'' if n == 1 else 's'}"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``path``'s lines, numbered from 1; an unreadable file is one WritesError."""
    try:
        with path.open("rb") as probe:
            head = probe.read(4)
        if len(head) == 4 and int.from_bytes(head, "little") & ~0xFF == BLKTRACE_MAGIC:
            raise WritesError(
                f"{path}: a blktrace binary file; give its text: blkparse -i {path} -o FILE"
            )
        with path.open(encoding="utf-8-sig", errors="replace") as lines:
            yield from enumerate(lines, 1)
    except IsADirectoryError:
        raise WritesError(f"{path}: a folder; expected a trace file") from None
    except FileNotFoundError:
        raise WritesError(f"{path}: no such file") from None
    except OSError as err:
        raise WritesError(f"{path}: unreadable ({err.strerror or err})") from None


def _whole(text: str, what: str) -> int:
    """A decimal count of bytes or sectors, ASCII digits only (int() takes '1_0' and '١')."""
    if not _DIGITS.fullmatch(text):
        raise _Bad(f"{what} {text[:24]!r} is not a whole number")
    return int(text)


def _read(
    path: Path, skip_bad: bool, line: Callable[[str, _Collector], bool], *, header: bool
) -> _Collector:
    """Every line through ``line``, which adds a write, ignores the line, or raises _Bad; it
    returns False to stop reading. With ``header`` the first non-empty line is not read (the
    caller checked it)."""
    found = _Collector(path, skip_bad)
    started = not header
    for lineno, text in _lines(path):
        if not started:
            started = bool(text.strip())
            continue
        try:
            if not line(text, found):
                break
        except _Bad as bad:
            found.bad(lineno, text, str(bad))
    return found


def _first_line(path: Path, comments: bool = False) -> str:
    """The first non-empty line, stripped ("" for an empty file); with ``comments``, the
    first that does not start with '#' either (a CSV's comment)."""
    for _, text in _lines(path):
        if text.strip() and not (comments and text.lstrip().startswith("#")):
            return text.strip()
    return ""


def read_fio_iolog(path: Path, *, skip_bad: bool = False) -> Writes:
    """fio's iolog, version 2 or 3 (fio's ``write_iolog`` writes version 3): its ``write``
    lines. Every other action fio reads, or fio's writer prints, is not counted."""
    version = FIO_HEADERS.get(_first_line(path)[:19])
    if version is None:
        raise WritesError(
            f"{path}: not a fio iolog (its first line is not 'fio version 2 iolog' or "
            "'fio version 3 iolog'; fio no longer reads version 1)"
        )
    timed = version == 3
    fields = f"{'time ' if timed else ''}file action [offset length]"
    shape = f"fio iolog v{version}: expected '{fields}'"

    def line(text: str, found: _Collector) -> bool:
        words = text.split()
        if not words:
            return True
        if timed:
            _whole(words[0], "timestamp")
            words = words[1:]
        if len(words) == 2 and words[1] in FIO_FILE_ACTIONS:
            return True
        if len(words) != 4 or words[1] not in FIO_IO_ACTIONS:
            raise _Bad(shape)
        offset, length = _whole(words[2], "offset"), _whole(words[3], "length")
        if words[1] == "write":
            found.add(offset, length)
        return True

    found = _read(path, skip_bad, line, header=True)
    return found.writes("fio", "the iolog has no 'write' line")


def _blkparse_line(event: str) -> Callable[[str, _Collector], bool]:
    """The reader of one blkparse line, counting writes of ``event``'s action."""

    def line(text: str, found: _Collector) -> bool:
        if not text.strip() or _BLK_INPUT.fullmatch(text.strip()):
            return True
        match = _BLK_EVENT.match(text)
        if match is None:
            if _BLK_SUMMARY.fullmatch(text.strip()):
                return False  # the summaries: the events are over
            raise _Bad("not a blkparse event (maj,min cpu seq time pid action RWBS ...)")
        if match["action"] != event or "W" not in match["rwbs"]:
            return True
        sectors = _BLK_RANGE.match(match["rest"] or "")
        if sectors is not None:
            found.add(int(sectors["sector"]) * SECTOR, int(sectors["sectors"]) * SECTOR)
        # else an event with no sector range (a flush, a pass-through command): not a write
        return True

    return line


def read_blkparse(path: Path, *, event: str = "D", skip_bad: bool = False) -> Writes:
    """blkparse's default text: the writes (RWBS with W, with a sector range) of ``event``'s
    lines, D (dispatched to the driver, after merges and splits), Q (queued as the file
    system sent them) or C (completed), exactly as blkparse printed them."""
    if event not in EVENTS:
        raise WritesError(f"--event {event}: expected one of {', '.join(EVENTS)}")
    first = _first_line(path)
    if not (_BLK_EVENT.match(first) or _BLK_INPUT.fullmatch(first)):
        raise WritesError(
            f"{path}: not blkparse's default text (its first line is not an event "
            "'maj,min cpu seq time pid action RWBS ...')"
        )
    found = _read(path, skip_bad, _blkparse_line(event), header=False)
    return found.writes(
        "blkparse", f"no {event} event of a write (RWBS with W) with a sector range"
    )


def _csv_field(text: str, what: str) -> int:
    size = parse_size(text)
    if size is None:
        raise _Bad(f"{what} {text.strip()[:24]!r} is not bytes or a size as fio writes one")
    return size


def read_csv(path: Path, *, skip_bad: bool = False) -> Writes:
    """``offset,length`` rows, bytes or fio's size words, an optional header and ``#``
    comments: every row a write."""
    found = _Collector(path, skip_bad)
    header_seen = False
    for lineno, text in _lines(path):
        row = text.strip()
        if not row or row.startswith("#"):
            continue
        fields = row.split(",")
        first_row, header_seen = not header_seen, True
        try:
            if len(fields) != 2:
                raise _Bad("expected 'offset,length'")
            if first_row and not any(parse_size(f) is not None for f in fields):
                continue  # a header: "offset,len"
            found.add(_csv_field(fields[0], "offset"), _csv_field(fields[1], "length"))
        except _Bad as bad:
            found.bad(lineno, text, str(bad))
    return found.writes("csv", "no 'offset,length' row")


def detect(path: Path) -> str:
    """The format of ``path`` by its first non-empty line: "fio", "blkparse" or "csv"."""
    first = _first_line(path)
    if first[:19] in FIO_HEADERS:
        return "fio"
    if _BLK_EVENT.match(first) or _BLK_INPUT.fullmatch(first):
        return "blkparse"
    if "," in _first_line(path, comments=True):
        return "csv"
    if not first:
        raise WritesError(f"{path}: empty; expected a fio iolog, blkparse text or a CSV")
    raise WritesError(
        f"{path}: not a fio iolog ('fio version 3 iolog' first), blkparse's default text "
        "('maj,min cpu seq time pid action RWBS ...') or a CSV ('offset,length')"
    )


def read_writes(path: Path, *, event: str = "D", skip_bad: bool = False) -> Writes:
    """The writes of ``path``, its format told by its first non-empty line (``detect``);
    ``event`` picks blkparse's action (D, Q or C) and is refused for the other formats only
    where it is not the default."""
    form = detect(path)
    if form == "blkparse":
        return read_blkparse(path, event=event, skip_bad=skip_bad)
    if event != "D":
        raise WritesError(f"--event {event}: only blkparse text has events; {path} is {form}")
    if form == "fio":
        return read_fio_iolog(path, skip_bad=skip_bad)
    return read_csv(path, skip_bad=skip_bad)
