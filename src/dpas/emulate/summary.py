"""One record per method: latency, sleep accuracy, the update rules used, where the CPU went."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpas.emulate.iolog import IoLog, Outcome
from dpas.policy import Case

#: "Converged": the sleep stays within this fraction of the device time...
CONVERGE_TOLERANCE = 0.10
#: ...for this many I/Os in a row.
CONVERGE_RUN = 100


@dataclass(frozen=True, slots=True)
class MethodSummary:
    """What the lab pages report for one method's run over a trace (times in µs).

    A statistic of nothing (the mean of no I/Os, the share of a wait of no time) is None,
    never NaN: the records are JSON, and NaN is no JSON value.
    """

    method: str
    ios: int
    app_mean_us: float | None
    app_p50_us: float | None
    app_p99_us: float | None
    app_p999_us: float | None
    device_mean_us: float | None
    #: shares of all I/Os that slept and woke late (over) or early (under)
    oversleep: float | None
    undersleep: float | None
    #: how often each update rule was applied (pairs of consecutive results for non-PAS methods)
    cases: dict[str, int]
    #: I/Os before the sleep first stays within 10% of the device time for 100 I/Os
    converged_after: int | None
    busy_us: float
    slept_us: float
    busy_share: float | None
    slept_share: float | None


def converged_after(sleep: np.ndarray, device: np.ndarray) -> int | None:
    """Index of the first I/O of the first run of CONVERGE_RUN I/Os slept within tolerance."""
    close = (sleep > 0) & (np.abs(sleep - device) <= CONVERGE_TOLERANCE * device)
    if len(close) < CONVERGE_RUN:
        return None
    runs = np.concatenate(([0], np.cumsum(close)))
    full = np.flatnonzero(runs[CONVERGE_RUN:] - runs[:-CONVERGE_RUN] == CONVERGE_RUN)
    return int(full[0]) if len(full) else None


def share(part: float, whole: float) -> float | None:
    """``part / whole``, or None when the whole is nothing (no I/Os, no time)."""
    return part / whole if whole > 0 else None


def mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def summarize(method: str, log: IoLog) -> MethodSummary:
    app = log.app_us
    n = len(log)
    p50, p99, p999 = np.percentile(app, [50, 99, 99.9]).tolist() if n else (None, None, None)
    total = float(app.sum())
    busy, slept = float(log.busy_us.sum()), float(log.slept_us.sum())
    counts = np.bincount(log.case[log.case >= 0], minlength=4)
    return MethodSummary(
        method=method,
        ios=n,
        app_mean_us=mean(app),
        app_p50_us=p50,
        app_p99_us=p99,
        app_p999_us=p999,
        device_mean_us=mean(log.device_us),
        oversleep=share(int(np.count_nonzero(log.outcome == Outcome.OVER)), n),
        undersleep=share(int(np.count_nonzero(log.outcome == Outcome.UNDER)), n),
        cases={case.label: int(counts[case]) for case in Case},
        converged_after=converged_after(log.sleep_us, log.device_us),
        busy_us=busy,
        slept_us=slept,
        busy_share=share(busy, total),
        slept_share=share(slept, total),
    )
