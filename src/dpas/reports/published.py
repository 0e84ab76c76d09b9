"""The published tables the simulator's profiles were calibrated on, read into one shape.

The shipped references (dpas.sim.reference) come in two shapes: the paper's table gives, per
drive, thousands of IOPS and fio's CPU % as {jobs: {mode: value}} with a ``role`` (calibration,
or prediction where only a few cells are given); the lab's table gives IOPS of one drive and no
CPU. ``published_values`` turns either into ``PublishedValues`` so the comparison never needs
to know which file a number came from.

A user's table (``dpas validate --against FILE``) has the paper's shape, and may say its block
size (``bs``, default 4096). ``read_table`` reads it with the same parser as the shipped ones,
``table_of``, which checks every number where it reads it and names the file and the key of
anything it refuses.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dpas.errors import DpasError
from dpas.limits import BS_SECTOR, MAX_BS, MAX_JOBS
from dpas.policy import Method

#: the lab's table: IOPS (not thousands) of its one drive, jobs pinned to CPU 0, no CPU column
LAB_IOPS = "multi_job_cpu0_pinned_iops"
#: the role of a table of one drive that names none: the lab calibrated qemu-lab on it
LAB_ROLE = "calibration"
#: the role of a drive in a user's table (--against) that names none
AGAINST_ROLE = "prediction"
#: the block size of a table that names none: the paper's and the lab's 4 KiB
TABLE_BS = 4096
#: the mode names a table may use (dpas.policy.Method's)
MODE_NAMES = tuple(m.value for m in Method)
#: what a per-drive table may hold at its top ("datasheet": the paper table's drive numbers)
TABLE_KEYS = ("what", "modes", "devices", "bs", "datasheet")
#: what one drive of a per-drive table may hold
DEVICE_KEYS = ("role", "kiops", "cpu_pct")
#: a job count as a table's key: a whole number as JSON keys spell it (no sign, no 0 first)
JOBS_KEY = re.compile(r"[1-9][0-9]*")
#: the shape, for the refusal of a file that does not have it
SHAPE = '{"bs": 4096, "devices": {"DEVICE": {"kiops": {"JOBS": {"MODE": kIOPS}}}}}'

Cells = dict[tuple[str, int], float]


class PublishedError(DpasError):
    """A published table, or a profile's [published] section naming one, dpas cannot read."""


@dataclass(frozen=True, slots=True)
class PublishedValues:
    """One drive's published cells: (mode, jobs) -> value; a cell the table lacks is absent."""

    table: str
    device: str
    #: "calibration", or the table's "prediction: ..." for a drive given only a few cells
    role: str
    kiops: Cells
    cpu_pct: Cells


@dataclass(frozen=True, slots=True)
class Table:
    """A table as read: its name, the block size of its cells, its mode order and drives."""

    #: a shipped table's name, or a user's file as given
    name: str
    bs: int
    #: the table's "modes" list (its order of modes; empty where it gives none)
    modes: tuple[str, ...]
    #: drive name -> its cells, in the table's order ("" for a table of one drive)
    devices: dict[str, PublishedValues]


def reference(table: str) -> Table:
    """A shipped reference table, read and checked as any table is."""
    path = resources.files("dpas.sim") / "reference" / f"{table}.json"
    at = f"reference table {table}: "
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise PublishedError(f"{at}cannot be read ({err})") from None
    return table_of(_json(text, at), table, at, LAB_ROLE)


def read_table(path: Path) -> Table:
    """A user's table (``dpas validate --against``): one line naming ``path`` where it cannot
    be read, is not JSON or not a table's shape, or holds a value dpas does not accept."""
    at = f"--against {path}: "
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PublishedError(f"{at}cannot be read ({err.strerror or err})") from None
    except ValueError:  # not UTF-8
        raise PublishedError(f"{at}not JSON (not UTF-8 text); expected {SHAPE}") from None
    return table_of(_json(text, at), str(path), at, AGAINST_ROLE, one_drive=False)


def _json(text: str, at: str) -> Any:
    """JSON text; a key given twice in one object is refused (the one would hide the other)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise PublishedError(f"{at}key {key!r} is given twice in one object")
            found[key] = value
        return found

    try:
        return json.loads(text, object_pairs_hook=unique)
    except (ValueError, RecursionError) as err:
        raise PublishedError(f"{at}not JSON ({err}); expected {SHAPE}") from None


def published_values(table: str, device: str, where: str = "") -> PublishedValues:
    """The cells ``table`` publishes for ``device`` ("" for a table of one drive); ``where``
    (a profile's name) opens the one-line error for a drive the table does not have."""
    read = reference(table)
    at = f"profile {where}: " if where else ""
    if device in read.devices:
        return read.devices[device]
    if "" in read.devices:
        raise PublishedError(
            f'{at}[published] device = {device!r}: table {table} has one drive; expected ""'
        )
    names = ", ".join(sorted(read.devices))
    raise PublishedError(f"{at}[published] device = {device!r}: table {table} has {names}")


def table_of(data: Any, name: str, at: str, role: str, *, one_drive: bool = True) -> Table:
    """The one parser of a table, shipped or a user's: the paper's shape (drives by name) or,
    where ``one_drive``, the lab's (IOPS of one drive, device ""; a user's table has the
    paper's). ``at`` opens every refusal (which table), and ``role`` is a drive's when the
    table names none."""
    if not isinstance(data, dict):
        raise PublishedError(f"{at}not a JSON object; expected {SHAPE}")
    bs = _bs(data.get("bs", TABLE_BS), at)
    if one_drive and "devices" not in data and LAB_IOPS in data:
        cells = _cells(data[LAB_IOPS], LAB_IOPS, at, _kiops, per=1000.0)
        return Table(name, bs, (), {"": PublishedValues(name, "", LAB_ROLE, cells, {})})
    if "devices" not in data:
        raise PublishedError(f'{at}no "devices"; expected {SHAPE}')
    _known(data, TABLE_KEYS, "", at)
    if not isinstance(data.get("what", ""), str):
        raise PublishedError(f'{at}"what": expected a string (what the table is)')
    modes = data.get("modes", [])
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise PublishedError(f'{at}"modes": expected a list of mode names ({_names()})')
    for mode in modes:
        _mode(mode, "modes", at)
    devices = data["devices"]
    if not isinstance(devices, dict) or not devices:
        raise PublishedError(f'{at}"devices": expected an object of drives; expected {SHAPE}')
    read = {device: _device(name, device, entry, at, role) for device, entry in devices.items()}
    return Table(name, bs, tuple(modes), read)


def _device(table: str, device: str, entry: Any, at: str, role: str) -> PublishedValues:
    """One drive: kiops (required) and cpu_pct (where given), and its role."""
    key = f"devices.{device}"
    if not isinstance(entry, dict):
        raise PublishedError(f'{at}{key}: expected an object with "kiops" (and "cpu_pct")')
    _known(entry, DEVICE_KEYS, key + ".", at)
    if "kiops" not in entry:
        raise PublishedError(f'{at}{key}: no "kiops"; expected {{"kiops": {{"JOBS": {{...}}}}}}')
    given_role = entry.get("role", role)
    if not isinstance(given_role, str):
        raise PublishedError(f"{at}{key}.role: expected a string (calibration, prediction...)")
    kiops = _cells(entry["kiops"], f"{key}.kiops", at, _kiops)
    if not kiops:
        raise PublishedError(f"{at}{key}.kiops: no cells; expected at least one")
    cpu = _cells(entry.get("cpu_pct", {}), f"{key}.cpu_pct", at, _cpu)
    return PublishedValues(table, device, given_role, kiops, cpu)


def _cells(by_jobs: Any, key: str, at: str, check: Any, per: float = 1.0) -> Cells:
    """{jobs: {mode: value}} (JSON's string job counts) -> {(mode, jobs): value / per}, each
    job count, mode and value checked."""
    if not isinstance(by_jobs, dict):
        raise PublishedError(f'{at}{key}: expected {{"JOBS": {{"MODE": value}}}}')
    cells: Cells = {}
    for jobs, row in by_jobs.items():
        count = _jobs(jobs, key, at)
        if not isinstance(row, dict):
            raise PublishedError(f'{at}{key}.{jobs}: expected {{"MODE": value}}')
        for mode, value in row.items():
            where = f"{key}.{jobs}.{mode}"
            _mode(mode, where, at)
            cells[mode, count] = check(value, where, at) / per
    return cells


def _jobs(text: str, key: str, at: str) -> int:
    if JOBS_KEY.fullmatch(text) and len(text) <= len(str(MAX_JOBS)) and int(text) <= MAX_JOBS:
        return int(text)
    raise PublishedError(
        f"{at}{key}.{_shown(text)}: expected a job count from 1 to {MAX_JOBS} as the key"
    )


def _mode(mode: str, where: str, at: str) -> None:
    if mode not in MODE_NAMES:
        raise PublishedError(f"{at}{where}: mode {mode!r}: expected one of {_names()}")


def _names() -> str:
    return ", ".join(MODE_NAMES)


def _number(value: Any) -> float | None:
    """A JSON number as a float (None for anything else, true and false too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        return None


def _kiops(value: Any, where: str, at: str) -> float:
    number = _number(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise PublishedError(f"{at}{where} = {_shown(value)}: expected a finite number above 0")
    return number


def _cpu(value: Any, where: str, at: str) -> float:
    number = _number(value)
    if number is None or not math.isfinite(number) or not 0 <= number <= 100:
        raise PublishedError(
            f"{at}{where} = {_shown(value)}: expected a CPU % from 0 to 100 (fio's, the jobs' mean)"
        )
    return number


def _bs(value: Any, at: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not BS_SECTOR <= value <= MAX_BS
        or value % BS_SECTOR
    ):
        raise PublishedError(
            f"{at}bs = {_shown(value)}: expected the block size in bytes, a whole number from "
            f"{BS_SECTOR} to {MAX_BS}, a multiple of {BS_SECTOR}"
        )
    return value


def _known(entry: dict[str, Any], keys: tuple[str, ...], key: str, at: str) -> None:
    for found in entry:
        if found not in keys:
            raise PublishedError(
                f"{at}{key}{found}: not a key of the table here; expected {', '.join(keys)}"
            )


def _shown(value: Any) -> str:
    """A value as JSON spells it (NaN, Infinity too), cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
