"""The result record every backend writes: one RunResult per run, and results.json's schema.

The simulator, fio on a device, the QEMU guest (and any backend to come) produce the same
record; the reports read it without knowing which backend wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA = "dpas.bench/2"
#: what dpas's own engine calls itself in a record's ``engine`` (fio's runs name fio's engine)
ENGINE = "dpas engine"


@dataclass(frozen=True, slots=True)
class RunResult:
    """One record of results.json: what fio and bench.sh report, and what the backend saw."""

    mode: str
    jobs: int
    rw: str
    repeat: int
    ios: int
    runtime_s: float
    iops: float
    lat_mean_us: float
    lat_p50_us: float
    lat_p99_us: float
    lat_p999_us: float
    #: fio's cpu line for the group: the jobs' CPU time over jobs x runtime (polling counts)
    cpu_pct: float
    ctx: int
    #: DPAS switch_stat totals summed over CPUs; None for other modes
    breakdown: dict[str, int] | None
    switch_stat: list[dict[str, Any]] | None
    #: DPAS mode changes: (ms, cpu, old, new)
    timeline: list[tuple[float, int, str, str]] | None
    #: simulator only (None for real runs): sleeps that yielded, and timers that expired while armed
    sleeps_taken: int | None
    sleeps_skipped: int | None
    max_qd: int | None
    d_init_ns: int
    seed: int | None
    events: int | None
    #: real runs only: what ran where
    backend: str = "simulator"
    kernel: str | None = None
    device: str | None = None
    knobs: dict[str, str] | None = None
    fio_version: str | None = None
    engine: str | None = None
    note: str | None = None
    #: the device's interrupts during the run (guest runs: from /proc/interrupts)
    interrupts: int | None = None
    #: guest runs: whether the guest kernel accepted io_uring's HYBRID_IOPOLL (6.13+)
    hybrid_iopoll: str | None = None
    #: context switches in which the jobs gave up the CPU themselves (blocked, slept), where known
    ctx_voluntary: int | None = None
    #: context switches in which the jobs were preempted, where known
    ctx_involuntary: int | None = None
    #: I/Os whose first poll after the sleep found the completion there, where known
    overslept: int | None = None
    #: I/Os whose first poll after the sleep did not find the completion, where known
    underslept: int | None = None
    #: the path of the per-I/O decision log file, where one was written
    log: str | None = None
    #: fio on the DPAS kernel: every CPU's switch mode (switch_stat's MODE[n], by name) around
    #: the run, {"before": {"0": "PAS", ...}, "after": {...}}; CPU numbers as JSON keeps them
    cpu_modes: dict[str, dict[str, str]] | None = None
    #: fio on the DPAS series' kernel in dpas vm: its dpas_io decisions replayed through
    #: dpas.policy (dpas.real.decisions): ios (this run's), replayed (its generation's so
    #: far), lost (events the ring dropped), differences (named; [] = the same decisions) and
    #: the first poll pass's verdicts
    replay: dict[str, Any] | None = None
