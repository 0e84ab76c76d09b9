"""A workload run's record fields, from what a backend measured of each group: the one rule
every backend (simulator, fio, engine, guest) follows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from dpas.results import GroupResult, foreground, mode_shares
from dpas.workload.model import Workload

#: the width of a series' bins
BIN_MS = 100.0


def group_result(
    name: str, role: str, jobs: int, lat_us: np.ndarray, runtime_s: float, cpu_ns: int, ctx: int
) -> GroupResult:
    """A group's measures from its I/Os' latencies (µs), its jobs' CPU time and switches."""
    ios = len(lat_us)
    p50, p99, p999 = np.percentile(lat_us, [50, 99, 99.9]) if ios else (0.0, 0.0, 0.0)
    mean = float(lat_us.mean()) if ios else 0.0
    return summed(name, role, jobs, ios, runtime_s, cpu_ns, ctx, mean, (p50, p99, p999))


def summed(
    name: str,
    role: str,
    jobs: int,
    ios: int,
    runtime_s: float,
    cpu_ns: int,
    ctx: int,
    lat_mean_us: float,
    percentiles_us: tuple[float, float, float],
) -> GroupResult:
    """A group's measures from its totals, as fio reports a reporting group: IOPS over the
    run's time, CPU over jobs x that time; the percentiles (p50, p99, p99.9) as given."""
    p50, p99, p999 = percentiles_us
    return GroupResult(
        name=name,
        role=role,
        jobs=jobs,
        ios=ios,
        iops=ios / runtime_s if runtime_s else 0.0,
        lat_mean_us=lat_mean_us,
        lat_p50_us=float(p50),
        lat_p99_us=float(p99),
        lat_p999_us=float(p999),
        cpu_pct=100 * cpu_ns / (jobs * runtime_s * 1e9) if runtime_s else 0.0,
        ctx=ctx,
    )


def binned(done_ms: np.ndarray, lat_us: np.ndarray, runtime_ms: float) -> dict[str, list[float]]:
    """One group's I/Os by the bin their completion fell in: IOPS and mean latency a bin."""
    bins = max(int(np.ceil(runtime_ms / BIN_MS)), 1)
    index = np.minimum((done_ms // BIN_MS).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    total = np.bincount(index, weights=lat_us, minlength=bins)
    mean = np.divide(total, count, out=np.zeros(bins), where=count > 0)
    return {
        "iops": [float(c) * 1000 / BIN_MS for c in count],
        "lat_us": [round(float(m), 3) for m in mean],
    }


def workload_fields(
    workload: Workload,
    groups: list[GroupResult],
    online: int,
    runtime_s: float,
    series: dict[str, dict[str, list[float]]] | None,
    timeline: list[tuple[float, int, str, str]] | None,
) -> dict[str, Any]:
    """The record's fields of a workload run: the foreground's measures (``foreground``), each
    group's, the host's CPU, DPAS's mode shares where the timeline is known, and the series."""
    cpus = workload.cpus(online)
    busy = sum(g.cpu_pct * g.jobs for g in groups)
    return {
        **foreground(groups),
        "workload": workload.name,
        "groups": [asdict(g) for g in groups],
        "host_cpu_pct": busy / len(cpus),
        "mode_share": None if timeline is None else mode_shares(timeline, cpus, runtime_s * 1000),
        "series": None if series is None else {"bin_ms": BIN_MS, "groups": series},
    }
