"""An emulation's summary tables (rich) and its per-I/O CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.table import Table

from dpas.emulate import Emulation, Outcome
from dpas.policy import Case

PER_IO_COLUMNS = (
    "method",
    "io",
    "device_us",
    "sleep_us",
    "wake_us",
    "app_us",
    "busy_us",
    "slept_us",
    "result",
    "case",
    "epoch",
)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    """A share as a percentage; "-" where it is undefined (a wait of no time)."""
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_tables(result: Emulation) -> list[Table]:
    """Two tables that fit 80 columns: latency, then how the methods slept and spent CPU."""
    latency = Table(title="app latency (µs)", title_justify="left")
    for name in ("method", "I/Os", "mean", "p50", "p99", "p99.9", "device mean"):
        latency.add_column(name, justify="left" if name == "method" else "right")
    behaviour = Table(title="sleeping and CPU", title_justify="left")
    for name in ("method", "over", "under", "OO", "OU", "UO", "UU", "converged", "busy", "slept"):
        behaviour.add_column(name, justify="left" if name == "method" else "right")
    for s in result.summaries:
        latency.add_row(
            s.method,
            str(s.ios),
            _us(s.app_mean_us),
            _us(s.app_p50_us),
            _us(s.app_p99_us),
            _us(s.app_p999_us),
            _us(s.device_mean_us),
        )
        behaviour.add_row(
            s.method,
            _pct(s.oversleep),
            _pct(s.undersleep),
            *(str(s.cases[c.label]) for c in Case),
            "-" if s.converged_after is None else str(s.converged_after),
            _pct(s.busy_share),
            _pct(s.slept_share),
        )
    behaviour.caption = (
        "over/under: I/Os that woke after/before the device finished; OO..UU: update rules "
        "(last two results); converged: I/Os before the sleep stays within 10% of the device "
        "time for 100 I/Os; busy/slept: shares of the total wait."
    )
    return [latency, behaviour]


def write_per_io(result: Emulation, path: Path) -> None:
    """Every I/O of every method, one CSV row each."""
    labels = [o.label for o in Outcome]
    cases = {c.value: c.label for c in Case}
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(PER_IO_COLUMNS)
        for method, log in result.logs.items():
            columns = zip(
                log.device_us.tolist(),
                log.sleep_us.tolist(),
                log.wake_us.tolist(),
                log.app_us.tolist(),
                log.busy_us.tolist(),
                log.slept_us.tolist(),
                log.outcome.tolist(),
                log.case.tolist(),
                log.epoch.tolist(),
                strict=True,
            )
            for i, (dev, sleep, wake, app, busy, slept, outcome, case, epoch) in enumerate(columns):
                out.writerow(
                    (
                        method,
                        i,
                        f"{dev:.3f}",
                        f"{sleep:.3f}",
                        f"{wake:.3f}",
                        f"{app:.3f}",
                        f"{busy:.3f}",
                        f"{slept:.3f}",
                        labels[outcome],
                        cases.get(case, ""),
                        "" if epoch < 0 else epoch,
                    )
                )
