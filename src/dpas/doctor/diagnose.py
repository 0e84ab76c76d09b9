"""A whole examination: the host once, then each device."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpas.doctor import checks, interrupts, timers
from dpas.doctor.checks import DeviceReport
from dpas.doctor.findings import Finding, Status
from dpas.doctor.timers import TimerRow
from dpas.errors import DpasError
from dpas.machine.kernel import Kernel
from dpas.machine.where import Where, block_name

SCHEMA = "dpas.doctor/1"


class DoctorError(DpasError, ValueError):
    """The device named cannot be examined (one line, for the command)."""


@dataclass(slots=True)
class Examination:
    host: list[Finding] = field(default_factory=list)
    timers: list[TimerRow] = field(default_factory=list)
    devices: list[DeviceReport] = field(default_factory=list)


def _disk_of_file(path: Path, where: Where) -> str | None:
    st = path.stat()
    link = where.sysfs / "dev" / "block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        real = link.resolve(strict=True)
    except OSError:
        return None
    return real.parent.name if (real / "partition").exists() else real.name


def _resolve(spec: str, where: Where) -> tuple[str | None, Path, str]:
    """(disk, path, kind) for a device name, a /dev path, or a regular file."""
    if "/" not in spec:
        if not block_name(spec):  # "", "..": /sys/block/.. is a folder too
            raise DoctorError(
                f"device {spec!r}: expected a block device's name (nvme0n1), its /dev path or "
                "a regular file"
            )
        if not (where.sysfs / "block" / spec).is_dir():
            raise DoctorError(
                f"device {spec!r}: no /sys/block/{spec} (block devices: "
                f"{', '.join(checks.block_devices(where)) or 'none'})"
            )
        return spec, Path("/dev") / spec, "block"
    path = Path(spec)
    if not path.exists():
        raise DoctorError(f"device {spec}: no such file or device")
    if path.is_block_device():
        name = path.resolve().name
        return (
            name if (where.sysfs / "block" / name).is_dir() else name.rstrip("0123456789"),
            path,
            "block",
        )
    if path.is_file():
        return _disk_of_file(path, where), path, "file"
    raise DoctorError(f"device {spec}: not a block device or a regular file")


def examine(
    specs: list[str],
    where: Where | None = None,
    release: str | None = None,
    timer_probe: bool = True,
    interrupt_probe: bool = True,
    fio: str = "fio",
) -> Examination:
    where = where or Where()
    kernel = Kernel.parse(release or os.uname().release)
    exam = Examination()
    exam.host += checks.kernel_findings(kernel)
    exam.host += checks.io_uring_findings()
    exam.host += checks.cpu_findings(where)
    if timer_probe:
        exam.timers = timers.probe()
        exam.host += checks.timer_findings(exam.timers)
    targets = [_resolve(s, where) for s in specs] or [
        (d, Path("/dev") / d, "block") for d in checks.block_devices(where)
    ]
    for disk, path, kind in targets:
        report = DeviceReport(str(path) if kind == "file" else str(disk), kind)
        if disk is not None and (where.sysfs / "block" / disk / "queue").is_dir():
            report.findings += checks.queue_findings(disk, kernel, where)
            report.findings += checks.device_facts(disk, where, path if kind == "file" else None)
        else:
            report.findings.append(
                Finding(
                    Status.INFO,
                    "queue",
                    f"{path}: its block device's queue is not visible in sysfs",
                )
            )
        if interrupt_probe:
            report.findings.append(interrupts.probe(disk, path, kind, where, fio))
        exam.devices.append(report)
    return exam


def records(exam: Examination) -> dict[str, object]:
    def rows(findings: list[Finding]) -> list[dict[str, str]]:
        return [
            {"status": f.status.value, "check": f.check, "evidence": f.evidence, "fix": f.fix}
            for f in findings
        ]

    return {
        "schema": SCHEMA,
        "host": rows(exam.host),
        "timers": [
            {
                "method": t.method,
                "requested_ns": t.requested_ns,
                "no_sleep": t.no_sleep,
                "slept": t.slept,
                "sleep_ratio": t.sleep_ratio,
                "median_overshoot_ns": t.median_overshoot_ns,
                "p99_overshoot_ns": t.p99_overshoot_ns,
            }
            for t in exam.timers
        ],
        "devices": [
            {"device": d.name, "kind": d.kind, "findings": rows(d.findings)} for d in exam.devices
        ],
    }


def examination(record: dict[str, Any]) -> Examination:
    """The inverse of ``records``: an examination made elsewhere (in a guest), to show here."""
    try:
        if record.get("schema") != SCHEMA:
            raise ValueError(f"schema {record.get('schema')!r}")

        def findings(rows: list[dict[str, str]]) -> list[Finding]:
            return [Finding(Status(r["status"]), r["check"], r["evidence"], r["fix"]) for r in rows]

        return Examination(
            host=findings(record["host"]),
            timers=[
                TimerRow(**{k: v for k, v in row.items() if k != "sleep_ratio"})
                for row in record["timers"]
            ],
            devices=[
                DeviceReport(d["device"], d["kind"], findings(d["findings"]))
                for d in record["devices"]
            ],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DoctorError(f"not a dpas doctor record ({type(err).__name__}: {err})") from None
