"""What a requested sleep really does here: did the thread sleep, and by how much it overshot.

Each request is timed, and the thread's context-switch counters (getrusage RUSAGE_THREAD) tell
whether it really left the CPU. The thread's timer slack is set to 1 ns while probing, as the
kernel's hybrid-poll sleep has none; it is put back afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dpas.doctor.syscalls import TimerFd

REQUESTS_NS = (100, 1000, 2000, 4000, 10000)
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30
#: a sleep is reliable from the first request at which at least this share slept
RELIABLE = 0.99


@dataclass(frozen=True, slots=True)
class TimerRow:
    method: str
    requested_ns: int
    no_sleep: int
    slept: int
    median_overshoot_ns: float
    p99_overshoot_ns: float

    @property
    def sleep_ratio(self) -> float:
        return self.slept / max(self.slept + self.no_sleep, 1)


def _switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_nvcsw + usage.ru_nivcsw


def _measure(method: str, sleep: Callable[[int], None], ns: int, count: int) -> TimerRow:
    slept = 0
    overshoot = np.empty(count)
    for i in range(count):
        before = _switches()
        start = time.perf_counter_ns()
        sleep(ns)
        overshoot[i] = time.perf_counter_ns() - start - ns
        slept += _switches() > before
    return TimerRow(
        method,
        ns,
        count - slept,
        slept,
        float(np.median(overshoot)),
        float(np.percentile(overshoot, 99)),
    )


def probe(count: int = 300, requests: tuple[int, ...] = REQUESTS_NS) -> list[TimerRow]:
    """clock_nanosleep (Python's time.sleep) and a timerfd, at each requested duration."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    slack = libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    timerfd = TimerFd()
    try:
        rows = [
            _measure("clock_nanosleep", lambda ns: time.sleep(ns / 1e9), ns, count)
            for ns in requests
        ]
        rows += [_measure("timerfd", timerfd.sleep, ns, count) for ns in requests]
    finally:
        timerfd.close()
        if slack > 0:
            libc.prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0)
    return rows


def reliable_from(rows: list[TimerRow]) -> int | None:
    """The shortest request from which every longer one slept at least RELIABLE of the time."""
    best = None
    for row in sorted(
        (r for r in rows if r.method == "clock_nanosleep"), key=lambda r: -r.requested_ns
    ):
        if row.sleep_ratio < RELIABLE:
            break
        best = row.requested_ns
    return best
