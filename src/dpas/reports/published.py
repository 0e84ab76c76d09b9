"""The published tables the simulator's profiles were calibrated on, read into one shape.

The shipped references (dpas.sim.reference) come in two shapes: the paper's table gives, per
drive, thousands of IOPS and fio's CPU % as {jobs: {mode: value}} with a ``role`` (calibration,
or prediction where only a few cells are given); the lab's table gives IOPS of one drive and no
CPU. ``published_values`` turns either into ``PublishedValues`` so the comparison never needs
to know which file a number came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dpas.errors import DpasError

#: the lab's table: IOPS (not thousands) of its one drive, jobs pinned to CPU 0, no CPU column
LAB_IOPS = "multi_job_cpu0_pinned_iops"
#: the role of a table of one drive that names none: the lab calibrated qemu-lab on it
LAB_ROLE = "calibration"

Cells = dict[tuple[str, int], float]


class PublishedError(DpasError):
    """A profile's [published] section names a drive or table dpas cannot read."""


@dataclass(frozen=True, slots=True)
class PublishedValues:
    """One drive's published cells: (mode, jobs) -> value; a cell the table lacks is absent."""

    table: str
    device: str
    #: "calibration", or the table's "prediction: ..." for a drive given only a few cells
    role: str
    kiops: Cells
    cpu_pct: Cells


def reference(table: str) -> dict[str, Any]:
    """A shipped reference table, as its JSON says it."""
    path = resources.files("dpas.sim") / "reference" / f"{table}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PublishedError(f"reference table {table}: cannot be read ({err})") from None
    if not isinstance(data, dict):
        raise PublishedError(f"reference table {table}: not a JSON object")
    return data


def published_values(table: str, device: str, where: str = "") -> PublishedValues:
    """The cells ``table`` publishes for ``device`` ("" for a table of one drive); ``where``
    (a profile's name) opens the one-line error for a drive the table does not have."""
    data = reference(table)
    at = f"profile {where}: " if where else ""
    if "devices" in data:
        return _per_device(table, device, data["devices"], at)
    if LAB_IOPS in data:
        if device:
            raise PublishedError(
                f'{at}[published] device = {device!r}: table {table} has one drive; expected ""'
            )
        return PublishedValues(table, "", LAB_ROLE, _cells(data[LAB_IOPS], 1000.0), {})
    raise PublishedError(f"reference table {table}: neither per-drive nor the lab's shape")


def _per_device(table: str, device: str, devices: dict[str, Any], at: str) -> PublishedValues:
    """One drive of the paper's table: kiops and (where given) cpu_pct, and its role."""
    if device not in devices:
        names = ", ".join(sorted(devices))
        raise PublishedError(f"{at}[published] device = {device!r}: table {table} has {names}")
    entry = devices[device]
    return PublishedValues(
        table,
        device,
        str(entry.get("role", LAB_ROLE)),
        _cells(entry.get("kiops", {})),
        _cells(entry.get("cpu_pct", {})),
    )


def _cells(by_jobs: dict[str, dict[str, float]], per: float = 1.0) -> Cells:
    """{jobs: {mode: value}} (JSON's string job counts) -> {(mode, jobs): value / per}."""
    return {
        (mode, int(jobs)): float(value) / per
        for jobs, row in by_jobs.items()
        for mode, value in row.items()
    }
