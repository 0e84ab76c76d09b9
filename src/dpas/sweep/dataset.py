"""The sweep's output folder: points/ (Parquet, one file a batch), records/ (the same batch's
full records, JSON lines), grid.toml and sweep.json.

Rows are written as they arrive, a batch at a time, each file written whole under a temporary
name and then renamed, the records before the rows: a run killed at any moment leaves only
complete parts (a records file without its Parquet part is rewritten by the next run), and a
rerun of the same grid runs only the points no part holds.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from dpas.errors import DpasError
from dpas.results import ROW_COLUMNS
from dpas.sweep.grid import Grid

SCHEMA = "dpas.sweep/3"
#: the records' own schema: results.json's records (dpas.results.RunResult) and their key
RECORDS_SCHEMA = "dpas.bench/2"
#: a part file every this many rows, or every FLUSH_S seconds, whichever comes first
BATCH_ROWS = 200
FLUSH_S = 10.0
PART = re.compile(r"part-(\d{5,})\.parquet")

_I = pa.int64()
_F = pa.float64()
_S = pa.string()
COLUMNS: list[tuple[str, pa.DataType]] = [
    ("key", _S),
    ("target", _S),
    ("profile", _S),
    ("mode", _S),
    ("jobs", _I),
    ("cpus", _S),
    ("bs", _I),
    ("rw", _S),
    ("workload", _S),
    ("runtime", _F),
    ("ios", _I),
    ("seed", pa.uint64()),
    ("repeat", _I),
    ("d_init", _S),
    ("adaptive", _I),
    ("up", _I),
    ("dn", _I),
    *((f"param{i}", _I) for i in range(1, 8)),
    ("order", _S),
    ("rules", _S),
    ("engine", _S),
    ("kernel", _S),
    ("refused", _S),
    *((name, getattr(pa, arrow)()) for name, _, arrow in ROW_COLUMNS),
]
ARROW_SCHEMA = pa.schema(COLUMNS)


class OutError(DpasError):
    """An output folder this grid cannot write to (another grid's, unreadable)."""


def check(out: Path, grid: Grid) -> None:
    """Before anything runs or is written: ``out`` is new, or this grid's (a folder of another
    grid, its text's hash different, is refused)."""
    meta, points = out / "sweep.json", out / "points"
    try:
        if meta.exists():
            old = json.loads(meta.read_text())
            if not isinstance(old, dict) or old.get("grid_sha256") != grid.sha256:
                found = old.get("grid_sha256") if isinstance(old, dict) else None
                raise OutError(
                    f"--out {out}: holds the results of another grid (sha256 "
                    f"{str(found)[:12]}, this one {grid.sha256[:12]}): "
                    "expected a new folder or this grid's"
                )
            if old.get("schema") != SCHEMA:
                raise OutError(
                    f"--out {out}: written by another dpas ({old.get('schema')}, this one "
                    f"{SCHEMA}): expected a new folder"
                )
        elif points.exists() and any(points.iterdir()):
            raise OutError(f"--out {out}: points/ there has no sweep.json: expected a new folder")
    except (OSError, ValueError) as err:
        raise OutError(f"--out {out}: {getattr(err, 'strerror', None) or err}") from None


def prepare(out: Path, grid: Grid) -> set[str]:
    """Make ``out`` this grid's folder (grid.toml, sweep.json) and give the keys its dataset
    already holds."""
    check(out, grid)
    points = out / "points"
    try:
        points.mkdir(parents=True, exist_ok=True)
        (out / "records").mkdir(exist_ok=True)
        (out / "grid.toml").write_text(grid.text)
        record = {
            "schema": SCHEMA,
            "grid_sha256": grid.sha256,
            "points": len(grid.points),
            "records_schema": RECORDS_SCHEMA,
        }
        (out / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
        return done_keys(points)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise OutError(f"--out {out}: {getattr(err, 'strerror', None) or err}") from None


def parts(points: Path) -> list[Path]:
    """The complete part files (temporary ones are not parts)."""
    return sorted(p for p in points.iterdir() if PART.fullmatch(p.name))


def done_keys(points: Path) -> set[str]:
    """The point keys of every part file."""
    keys: set[str] = set()
    for part in parts(points):
        keys.update(pq.read_table(part, columns=["key"]).column("key").to_pylist())
    return keys


def read(points: Path) -> list[dict[str, Any]]:
    """Every row of the dataset, sorted by key (tests and reports)."""
    rows = [r for part in parts(points) for r in pq.read_table(part).to_pylist()]
    return sorted(rows, key=lambda r: r["key"])


def records_of(part: Path) -> Path:
    """The records file of a Parquet part: OUT/records/part-N.jsonl.gz beside OUT/points/."""
    return part.parent.parent / "records" / part.name.replace(".parquet", ".jsonl.gz")


def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """Every point's full record (results.json's, plus its key) by key: those of complete
    parts only (a records file whose Parquet part never landed is not one)."""
    found: dict[str, dict[str, Any]] = {}
    for part in parts(out / "points"):
        with gzip.open(records_of(part), "rt") as lines:
            found.update((r["key"], r) for r in map(json.loads, lines))
    return found


class Writer:
    """Collects rows and records and writes a part every BATCH_ROWS rows or FLUSH_S seconds;
    ``close`` writes what is left (call it in a finally: whatever ran is kept)."""

    def __init__(self, points: Path) -> None:
        self.points = points
        self.rows: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        found = [int(m.group(1)) for p in parts(points) if (m := PART.fullmatch(p.name))]
        self.next = max(found, default=-1) + 1
        self.since = time.monotonic()

    def add(self, row: dict[str, Any], record: dict[str, Any] | None) -> None:
        self.rows.append(row)
        if record is not None:
            self.records.append(record)
        if len(self.rows) >= BATCH_ROWS or time.monotonic() - self.since >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """The records, then the rows, each written to a temporary name and renamed: the
        Parquet part, which marks its points done, lands last."""
        self.since = time.monotonic()
        if not self.rows:
            return
        final = self.points / f"part-{self.next:05d}.parquet"
        write_whole(records_of(final), _jsonl(self.records))
        try:
            write_table(pa.Table.from_pylist(self.rows, schema=ARROW_SCHEMA), final)
        except OutError:  # records without their part: the next part's write replaces them
            records_of(final).unlink(missing_ok=True)
            raise
        self.next += 1
        self.rows, self.records = [], []

    def close(self) -> None:
        self.flush()


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    """JSON lines, gzip'd without a timestamp: the same records, the same bytes."""
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    return gzip.compress(text.encode(), mtime=0)


def write_whole(path: Path, data: bytes) -> None:
    """``data`` as ``path``, written under a temporary name and renamed: whoever reads it, a
    rerun after a kill included, finds the whole file or none."""
    _replace_whole(path, lambda temp: temp.write_bytes(data))


def write_table(table: pa.Table, path: Path) -> None:
    """A Parquet file, whole or not at all (as ``write_whole``)."""
    _replace_whole(path, lambda temp: pq.write_table(table, temp))


def _replace_whole(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` to a temporary name beside ``path``, then renamed to it. A write that fails
    (a full disk, an I/O error) leaves no temporary part behind and is one line naming
    ``path``: what was written before it stays, and a rerun resumes from there."""
    temp = _temporary(path)
    try:
        write(temp)
        os.replace(temp, path)
    except OSError as err:  # pyarrow's IO errors are OSErrors too
        temp.unlink(missing_ok=True)
        reason = err.strerror or " ".join(str(err).split())[:160]
        raise OutError(
            f"{path}: cannot be written ({reason}); the points saved before it are kept, "
            "and a rerun after making room runs the rest"
        ) from None


def _temporary(path: Path) -> Path:
    """A hidden name beside ``path`` (a part's is not a part: PART does not match it)."""
    return path.with_name(f".{path.name}.tmp")
