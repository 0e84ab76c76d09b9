"""The doctor's report on a terminal: findings by section, and the lab's timer table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from dpas.doctor.diagnose import Examination
from dpas.doctor.findings import Finding, Status

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.INFO: "dim"}


def _findings(title: str, findings: list[Finding]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, expand=True)
    table.add_column("", width=4)
    table.add_column("check", ratio=1)
    table.add_column("what was read", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for f in findings:
        table.add_row(f"[{STYLE[f.status]}]{f.status.value}[/]", f.check, f.evidence, f.fix)
    return table


def timer_table(exam: Examination) -> Table:
    """The lab's table: requested ns, did not sleep, slept, sleep ratio (and the overshoot)."""
    table = Table(
        title="timers: what a requested sleep does here (1 ns timer slack)", title_justify="left"
    )
    for name in (
        "method",
        "requested ns",
        "no sleep",
        "slept",
        "sleep ratio",
        "median over ns",
        "p99 over ns",
    ):
        table.add_column(name, justify="left" if name == "method" else "right")
    for r in exam.timers:
        table.add_row(
            r.method,
            str(r.requested_ns),
            str(r.no_sleep),
            str(r.slept),
            f"{100 * r.sleep_ratio:.1f}%",
            f"{r.median_overshoot_ns:.0f}",
            f"{r.p99_overshoot_ns:.0f}",
        )
    return table


def show(exam: Examination, console: Console) -> None:
    console.print(_findings("host", exam.host))
    if exam.timers:
        console.print(timer_table(exam))
    for device in exam.devices:
        console.print(_findings(f"{device.kind} {device.name}", device.findings))
    worst = [f for d in exam.devices for f in d.findings] + exam.host
    fails = sum(f.status is Status.FAIL for f in worst)
    warns = sum(f.status is Status.WARN for f in worst)
    console.print(f"{fails} FAIL, {warns} WARN")
