"""``dpas doctor``: why polling, PAS or DPAS will not engage here, with the fixes."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from dpas.cli.app import InputError, cli
from dpas.cli.options import sysfs_root_option
from dpas.doctor.diagnose import DoctorError, examine, records
from dpas.machine.where import Where
from dpas.reports.doctor import show


@cli.command("doctor")
@click.argument("devices", nargs=-1, metavar="[DEV]...")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON records.")
@sysfs_root_option("Read /sys from here (a test seam).")
@click.option(
    "--proc-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/proc"),
    show_default=True,
    help="Read /proc from here (a test seam).",
)
@click.option(
    "--fio", "fio_path", default="fio", show_default=True, help="fio for the interrupt probe."
)
def doctor_command(
    devices: tuple[str, ...], as_json: bool, sysfs_root: Path, proc_root: Path, fio_path: str
) -> None:
    """Check the kernel, the polling path, the statistics pitfall, timers, the devices and
    the CPUs; each finding is OK, WARN or FAIL with what was read and the command that fixes
    it. DEV: a block device (nvme0n1, /dev/nvme0n1) or a file; default: every block device.
    Read-only; without root a probe says what it could not read."""
    try:
        exam = examine(list(devices), Where(sysfs_root, proc_root), fio=fio_path)
    except DoctorError as err:
        raise InputError(str(err)) from None
    if as_json:
        click.echo(json.dumps(records(exam), indent=1))
    else:
        show(exam, Console())
